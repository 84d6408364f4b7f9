"""`rag chunks`: print the chunks of a corpus, for auditing."""
from __future__ import annotations

import argparse
import json

from rag.cli.common import add_corpus, out


def add(sub) -> None:
    p = sub.add_parser("chunks", help="print the chunks of a corpus (for auditing)")
    add_corpus(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--max-chars", type=int, default=360)
    p.add_argument("--min-chars", type=int, default=80)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rag.chunks import ChunkSettings, chunk_document
    from rag.documents import load_corpus

    settings = ChunkSettings(max_chars=args.max_chars, min_chars=args.min_chars)
    for doc in load_corpus(args.corpus):
        for c in chunk_document(doc, settings):
            if args.json:
                out(json.dumps(c.to_dict(), ensure_ascii=False))
            else:
                where = " > ".join(c.section)
                out(f"{c.source}[{c.start}:{c.end}] 《{c.title}》 {c.author} ¶{c.paragraph}"
                    + (f" {where}" if where else ""))
                out("    " + c.text.replace("\n", "\n    "))
    return 0
