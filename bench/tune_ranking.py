"""Compare ranking methods on a query set with gold answers, from one pass of leg scores.

    python bench/tune_ranking.py --index DIR --queries Q.jsonl [--alphas 0.2,0.3,...]

Prints Recall@1/5/10 and MRR@10 for dense alone, BM25 alone, reciprocal-rank fusion
(k=60) and the min-max convex fusion of rag.search at several dense weights. All methods
rank the same candidate pool (the union of each leg's top 100), so their differences come
from the fusion alone.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rag.batchio.evaluate import Judged, first_hit, metrics  # noqa: E402
from rag.index import load  # noqa: E402
from rag.search import Searcher, fuse  # noqa: E402


def rrf(dense: np.ndarray, sparse: np.ndarray, k: int = 60) -> np.ndarray:
    rd = np.argsort(np.argsort(-dense))
    rs = np.argsort(np.argsort(-sparse))
    return 1 / (k + rd + 1) + 1 / (k + rs + 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--alphas", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    index = load(args.index)
    s = Searcher(index)
    queries = [json.loads(l) for l in open(args.queries, encoding="utf-8") if l.strip()]
    qv = s.embedder.queries([q["query"] for q in queries])
    _, top = index.faiss.search(np.ascontiguousarray(qv), min(100, index.size))
    legs = [s.leg_scores(q["query"], qv[i], top[i], None) for i, q in enumerate(queries)]
    chunks = {p: c for p, c in index.store.iter_chunks()}
    methods = {"dense": lambda d, b: d, "bm25": lambda d, b: b + 1e-9 * d, "rrf": rrf}
    for a in (float(x) for x in args.alphas.split(",")):
        methods[f"fused a={a:.2f}"] = (lambda a: lambda d, b: fuse(d, b, a))(a)
    table = {}
    for name, f in methods.items():
        judged = []
        for q, (cand, d, b, _t) in zip(queries, legs):
            order = np.argsort(-f(d, b), kind="stable")[:10]
            res = [{"rank": r + 1, "source": chunks[int(cand[j])].source, "start": chunks[int(cand[j])].start,
                    "end": chunks[int(cand[j])].end} for r, j in enumerate(order)]
            judged.append(Judged(q["id"], q.get("type"), first_hit(q, res, index.store.file_text)))
        m = metrics(judged)
        table[name] = m
        en = m.get("by_type", {}).get("en")
        print(f"{name:<14} R@1 {m['recall@1']:.3f}  R@5 {m['recall@5']:.3f}  R@10 {m['recall@10']:.3f}  "
              f"MRR@10 {m['mrr@10']:.3f}" + (f"  en R@5 {en['recall@5']:.3f}" if en else ""))
    if args.json:
        print(json.dumps(table))


if __name__ == "__main__":
    main()
