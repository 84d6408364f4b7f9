"""`rag show SOURCE [--start N --end M]`: the canonical text every citation points into,
so anyone can check a citation (for a PDF: its pages joined by form feeds)."""
from __future__ import annotations

import argparse
import json
import sys

from rag.cli.common import add_index, index_dir
from rag.errors import BadInput


def add(sub) -> None:
    p = sub.add_parser("show", help="print a document's indexed text, or the span [start, end) of it")
    p.add_argument("source", help="path relative to the corpus, as results name it")
    p.add_argument("--start", type=int, default=None)
    p.add_argument("--end", type=int, default=None)
    p.add_argument("--json", action="store_true", help="the span with its page and boxes, as JSON")
    add_index(p, embedder=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rag.index import load

    index = load(index_dir(args))
    text = index.store.file_text(args.source)
    if text is None:
        raise BadInput(f"{args.source} is not in index {index.folder}; see the library with: rag check")
    start = 0 if args.start is None else args.start
    end = len(text) if args.end is None else args.end
    if not 0 <= start <= end <= len(text):
        raise BadInput(f"--start/--end must satisfy 0 <= start <= end <= {len(text)}")
    if args.json:
        from rag.documents.layout_store import locate

        page, page_end, boxes = locate(index.store, args.source, start, end)
        sys.stdout.write(json.dumps({"source": args.source, "start": start, "end": end,
                                     "text": text[start:end], "page": page, "page_end": page_end,
                                     "boxes": boxes}, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(text[start:end] + ("\n" if not text[start:end].endswith("\n") else ""))
    return 0
