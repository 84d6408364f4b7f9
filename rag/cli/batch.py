"""`rag batch`: answer a file of queries (.txt, .jsonl, .csv) into .jsonl or .csv."""
from __future__ import annotations

import argparse
import sys

from rag.cli.common import add_filters, add_index, searcher
from rag.errors import BadInput, RagError


def add(sub) -> None:
    p = sub.add_parser("batch", help="answer a file of queries (.txt, .jsonl, .csv)")
    p.add_argument("input")
    p.add_argument("-o", "--output", help=".jsonl (default: stdout) or .csv")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--strict", action="store_true", help="stop at the first bad line")
    add_index(p)
    add_filters(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rag.batchio import Writer, answer, read_items
    from rag.embed import show_progress
    from rag.search import check_k

    check_k(args.k)
    items = read_items(args.input, strict=args.strict)     # a bad file is refused before loading
    s = searcher(args)
    writer = Writer(args.output)
    bar = None
    if show_progress():
        from tqdm import tqdm

        bar = tqdm(desc="queries", unit="q")

    def bad(it, e: RagError) -> None:
        if args.strict:
            raise BadInput(f"{args.input}:{it.line}: {e}") from None
        print(f"warning: {args.input}:{it.line}: {e} (skipped)", file=sys.stderr)

    done = 0
    try:
        for group, records in answer(items, s, args.k, bad, source=args.source, article=args.article):
            for rec in records:
                writer.write(rec)
            done += len(records)
            if bar:
                bar.update(len(group))
    except BaseException:
        writer.abort()           # a run that fails leaves an earlier output file as it was
        raise
    finally:
        writer.close()
        if bar:
            bar.close()
    print(f"{done} queries answered", file=sys.stderr)
    return 0
