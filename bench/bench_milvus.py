"""Milvus backend against the local FAISS index on the same corpus: single-query latency
(p50, p90) and batch throughput (queries/s) of hybrid search, with the query vectors
computed once beforehand so only the index side is timed; medians over --repeat runs.

    python bench/bench_milvus.py --milvus-index M --faiss-index F --queries Q.jsonl [--n 200]

Build the two indexes of one corpus first, e.g. for CMRC (the Milvus one reuses the local
index's vectors, so nothing is embedded twice):
    rag build --corpus ../shared/eval/cmrc/corpus --index /tmp/cm
    rag build --corpus ../shared/eval/cmrc/corpus --index /tmp/cm-milvus --backend milvus \\
        --milvus-uri /tmp/cm.db --reuse-vectors /tmp/cm
Against a server: build with --milvus-uri http://host:19530 (the manifest remembers it).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time


def _queries(path: str, n: int) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line)["query"])
            if len(out) >= n:
                break
    return out


def measure(index_dir: str, qs: list[str], repeat: int, batch: int) -> dict:
    from rag.index import load
    from rag.search import Searcher

    t0 = time.perf_counter()
    idx = load(index_dir)
    s = Searcher(idx)
    opened = time.perf_counter() - t0
    vecs = s.embed(qs)
    s.search_many(qs[:4], k=10, vectors=vecs[:4])          # warm
    single, rates = [], []
    for _ in range(repeat):
        for i, q in enumerate(qs):
            t = time.perf_counter()
            s.search_many([q], k=10, vectors=vecs[i:i + 1])
            single.append(time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(0, len(qs), batch):
            s.search_many(qs[i:i + batch], k=10, vectors=vecs[i:i + batch])
        rates.append(len(qs) / (time.perf_counter() - t))
    single.sort()
    return {"backend": idx.manifest.get("backend", "faiss"), "chunks": idx.manifest["counts"]["chunks"],
            "open_s": round(opened, 2), "single_p50_ms": round(1000 * single[len(single) // 2], 1),
            "single_p90_ms": round(1000 * single[int(len(single) * 0.9)], 1),
            "batch_qps": round(statistics.median(rates), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--milvus-index", required=True)
    ap.add_argument("--faiss-index", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    qs = _queries(a.queries, a.n)
    rows = [measure(a.faiss_index, qs, a.repeat, a.batch), measure(a.milvus_index, qs, a.repeat, a.batch)]
    if a.json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    print(f"{len(qs)} queries x {a.repeat}, k=10, query vectors precomputed")
    print(f"{'backend':8} {'chunks':>7} {'open s':>7} {'p50 ms':>7} {'p90 ms':>7} {'batch q/s':>10}")
    for r in rows:
        print(f"{r['backend']:8} {r['chunks']:>7} {r['open_s']:>7} {r['single_p50_ms']:>7} "
              f"{r['single_p90_ms']:>7} {r['batch_qps']:>10}")


if __name__ == "__main__":
    main()
