"""`rag` command line: thin argparse layer over the library.

Every user-facing failure is a `RagError` printed as one line with exit code 2; an
unexpected exception is also reduced to one line (exit 1) unless RAG_DEBUG is set.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable

from rag.errors import RagError

DEFAULT_CORPUS = "seeds"


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def cmd_chunks(args: argparse.Namespace) -> int:
    from rag.chunking import ChunkSettings, chunk_document
    from rag.documents import load_corpus

    settings = ChunkSettings(max_chars=args.max_chars, min_chars=args.min_chars)
    for doc in load_corpus(args.corpus):
        for c in chunk_document(doc, settings):
            if args.json:
                _out(json.dumps(c.to_dict(), ensure_ascii=False))
            else:
                where = " > ".join(c.section)
                _out(f"{c.source}[{c.start}:{c.end}] 《{c.title}》 {c.author} ¶{c.paragraph}"
                     + (f" {where}" if where else ""))
                _out("    " + c.text.replace("\n", "\n    "))
    return 0


def _add_corpus(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", default=os.environ.get("RAG_CORPUS", DEFAULT_CORPUS),
                   help="folder of documents (default: seeds, or $RAG_CORPUS)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("chunks", help="print the chunks of a corpus (for auditing)")
    _add_corpus(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--max-chars", type=int, default=360)
    p.add_argument("--min-chars", type=int, default=80)
    p.set_defaults(func=cmd_chunks)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - last line of defence: one line, no traceback
        if os.environ.get("RAG_DEBUG"):
            raise
        print(f"error: unexpected {type(e).__name__}: {e} (set RAG_DEBUG=1 for details)",
              file=sys.stderr)
        return 1
