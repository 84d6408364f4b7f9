"""`rag query`: search the index."""
from __future__ import annotations

import argparse
import json

from rag.cli.common import add_filters, add_index, out, searcher


def add(sub) -> None:
    p = sub.add_parser("query", help="search the index")
    p.add_argument("text")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--json", action="store_true")
    add_index(p)
    add_filters(p)
    p.set_defaults(func=run)


def format_result(r) -> str:
    where = " > ".join(r.section)
    page = f" · 第{r.page}页" if r.page else ""
    cite = f"{r.source} [{r.start}:{r.end}] 《{r.title}》 {r.author}" + (f" · {where}" if where else "") \
        + f" · ¶{r.paragraph}" + page
    body = r.text.replace("\n", "\n    ")
    return f"{r.rank:>2}. {r.score:.3f}  {cite}\n    {body}\n    ▶ {r.best_sentence.get('text', '')}"


def run(args: argparse.Namespace) -> int:
    from rag.search import check_k, clean_query

    q, k = clean_query(args.text), check_k(args.k)       # refused before the index is loaded
    results = searcher(args).search(q, k=k, source=args.source, article=args.article)
    if args.json:
        out(json.dumps({"query": q, "results": [r.to_dict() for r in results]}, ensure_ascii=False))
    elif not results:
        out("no results")
    else:
        for r in results:
            out(format_result(r))
    return 0
