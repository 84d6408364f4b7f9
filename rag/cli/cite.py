"""`rag cite`: find where a quote comes from and whether it is quoted correctly."""
from __future__ import annotations

import argparse
import json
import sys

from rag.cli.common import add_index, index_dir, warn
from rag.errors import BadInput, RagError


def add(sub) -> None:
    p = sub.add_parser("cite", help="find where a quote comes from and whether it is quoted correctly")
    p.add_argument("quote", nargs="?", help="the quoted text")
    p.add_argument("--input", help='.jsonl of {"id", "quote"} lines (instead of one quote)')
    p.add_argument("-o", "--output", help="output .jsonl for --input (default: stdout)")
    p.add_argument("-k", type=int, default=5, help="related passages to list (default 5)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-related", action="store_true", help="skip the related-passages search")
    add_index(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rag.batchio import read_items
    from rag.cite import MAX_RELATED, Citer, check_quote, format_result
    from rag.index import load

    if (args.quote is None) == (args.input is None):
        raise BadInput('give either a quote or --input FILE.jsonl (lines {"id", "quote"})')
    if not 1 <= args.k <= MAX_RELATED:
        raise BadInput(f"k must be between 1 and {MAX_RELATED}, not {args.k}")
    cases = None
    if args.quote is not None:
        check_quote(args.quote)          # fail fast, before loading anything
    else:                                # the same hardened reader as rag batch: refused before loading
        cases = read_items(args.input, field="quote", kinds=(".jsonl",), what="quote file")
    index = load(index_dir(args), embedder=getattr(args, "embedder", None))
    citer = Citer(index)
    want_related = not getattr(args, "no_related", False)
    if args.quote is not None:
        res = citer.lookup(args.quote, k=args.k, related=want_related)
        sys.stdout.write((json.dumps(res.to_dict(), ensure_ascii=False) if args.json
                          else format_result(res)) + "\n")
        return 0
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    n = found = 0
    try:
        for it in cases:
            try:
                res = citer.lookup(it.query, k=args.k, related=want_related)
            except RagError as e:
                warn(f"{args.input}:{it.line}: {e} (skipped)")
                continue
            d = res.to_dict()
            qid = it.id if not it.id.isdigit() or "id" in it.extra else int(it.id)
            out.write(json.dumps({"id": qid, "quote": d["quote"], "matches": d["matches"],
                                  "related": d["related"]}, ensure_ascii=False) + "\n")
            n += 1
            found += bool(res.matches)
    finally:
        if args.output:
            out.close()
    print(f"{n} quotes looked up, {found} found in the corpus", file=sys.stderr)
    return 0
