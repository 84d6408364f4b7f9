"""`rag eval`: Recall@1/5/10, MRR@10, nDCG@10 on a query set with gold answers."""
from __future__ import annotations

import argparse
import json

from rag.cli.common import add_index, out, searcher
from rag.errors import BadInput


def add(sub) -> None:
    p = sub.add_parser("eval", help="Recall@1/5/10, MRR@10, nDCG@10 on a query set with gold answers")
    p.add_argument("queries")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    add_index(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rag.batchio import chunked, read_items
    from rag.batchio.evaluate import Judged, first_hit, format_table, metrics

    s = searcher(args)
    store = s.index.store
    judged = []
    for group in chunked(read_items(args.queries, strict=True), 64):
        for it, res in zip(group, s.search_many([it.query for it in group], k=args.k)):
            if "gold_file" not in it.extra:
                raise BadInput(f"{args.queries}:{it.line}: no gold_file")
            q = {"gold_file": it.extra["gold_file"], "gold_quote": it.extra.get("gold_quote")}
            rank = first_hit(q, [r.to_dict() for r in res], store.file_text)
            judged.append(Judged(it.id, it.extra.get("type"), rank))
    m = metrics(judged)
    out(json.dumps(m, ensure_ascii=False) if args.json else format_table(m))
    return 0
