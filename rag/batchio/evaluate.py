"""Retrieval metrics with the same hit rule as `../shared/eval/score.py`.

A result hits when it comes from `gold_file` and, when the query carries a `gold_quote`,
its `[start, end)` overlaps the quote's span in the raw file by at least half the quote's
length (any occurrence of the quote counts). Recall@k: share of queries with a hit in the
top k; MRR@10: mean reciprocal rank of the first hit; nDCG@10 with binary gains, where
only the first hit counts (one relevant passage per question), so nDCG = 1/log2(1+rank).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable

KS = (1, 5, 10)


@dataclass
class Judged:
    id: str
    type: str | None
    rank: int | None       # first hit, 1-based, or None


def find_all(hay: str, needle: str) -> list[tuple[int, int]]:
    spans, i = [], hay.find(needle)
    while i >= 0:
        spans.append((i, i + len(needle)))
        i = hay.find(needle, i + 1)
    return spans


def first_hit(query: dict, results: list[dict], raw: Callable[[str], str | None]) -> int | None:
    gold = query["gold_file"]
    quote = query.get("gold_quote")
    spans = find_all(raw(gold) or "", quote) if quote else None
    for pos, r in enumerate(sorted(results, key=lambda r: r.get("rank", math.inf)), 1):
        if r.get("source") != gold:
            continue
        if spans is None:
            return pos
        need = len(quote) / 2.0
        if any(min(r["end"], ge) - max(r["start"], gs) >= need for gs, ge in spans):
            return pos
    return None


def metrics(judged: Iterable[Judged]) -> dict:
    judged = list(judged)

    def block(items: list[Judged]) -> dict:
        n = len(items)
        out = {"n": n}
        for k in KS:
            out[f"recall@{k}"] = sum(1 for j in items if j.rank and j.rank <= k) / n if n else 0.0
        out["mrr@10"] = sum(1 / j.rank for j in items if j.rank and j.rank <= 10) / n if n else 0.0
        out["ndcg@10"] = sum(1 / math.log2(1 + j.rank) for j in items if j.rank and j.rank <= 10) / n if n else 0.0
        return out

    res = block(judged)
    by_type = defaultdict(list)
    for j in judged:
        if j.type:
            by_type[j.type].append(j)
    if by_type:
        res["by_type"] = {t: block(v) for t, v in sorted(by_type.items())}
    return res


def format_table(m: dict) -> str:
    cols = ["n"] + [f"recall@{k}" for k in KS] + ["mrr@10", "ndcg@10"]
    lines = ["set        " + "  ".join(f"{c:>9}" for c in cols)]

    def row(name: str, b: dict) -> str:
        return f"{name:<10} " + "  ".join(f"{b[c]:>9}" if c == "n" else f"{b[c]:>9.3f}" for c in cols)

    lines.append(row("all", m))
    for t, b in m.get("by_type", {}).items():
        lines.append(row(t, b))
    return "\n".join(lines)
