"""Search speed, measured in one process against baselines run in the same process.

    python bench/bench_search.py [--corpus DIR] [--queries Q.jsonl] [--runs 5] [--build N|all]

Prints medians over `--runs` runs of:
  * warm single-query search latency vs the time to embed that query alone (target <= 1.5x);
  * batch throughput (rag batch's path: 64 queries per call) vs one-query-at-a-time (>= 2x);
  * with --build: `build` of N corpus files from scratch vs embedding their chunks alone
    (<= 1.2x). The index used for the query figures is cached in bench/.cache/.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.chunking import ChunkSettings, chunk_document, embed_text  # noqa: E402
from rag.documents import load_corpus  # noqa: E402
from rag.embedding import get_embedder  # noqa: E402
from rag.index import build, load  # noqa: E402
from rag.search import Searcher  # noqa: E402

CMRC = ROOT.parent / "shared" / "eval" / "cmrc"


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(CMRC / "corpus"))
    ap.add_argument("--queries", default=str(CMRC / "queries_trial.jsonl"))
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--single", type=int, default=50, help="queries per single-query run")
    ap.add_argument("--index", default=None, help="use this built index of --corpus (default: a cached one)")
    ap.add_argument("--build", default=None, help="also time a build of N files (or 'all')")
    args = ap.parse_args()

    cache = Path(args.index) if args.index else ROOT / "bench" / ".cache" / ("index-" + Path(args.corpus).name + "-" + (args.embedder or "default").replace(":", "_").replace("/", "_"))
    t = timed(lambda: build(args.corpus, cache, embedder=args.embedder))
    print(f"index ready in {t:.1f}s ({cache})")
    searcher = Searcher(load(cache))
    emb = searcher.embedder
    queries = [json.loads(l)["query"] for l in open(args.queries, encoding="utf-8") if l.strip()]
    single = queries[: args.single]
    searcher.search(single[0])  # warm: model, caches, first-touch of the vectors

    embed_runs, search_runs = [], []
    for _ in range(args.runs):
        embed_runs.append(med([timed(lambda q=q: emb.queries([q])) for q in single]))
        search_runs.append(med([timed(lambda q=q: searcher.search(q, k=10)) for q in single]))
    e, s = med(embed_runs), med(search_runs)
    print(f"single query: embed alone {e * 1e3:.1f} ms, full search {s * 1e3:.1f} ms, "
          f"ratio {s / e:.2f}x (target <= 1.5x)")

    one_runs, batch_runs = [], []
    for _ in range(args.runs):
        sample = queries[:100]
        one_runs.append(len(sample) / timed(lambda: [searcher.search(q, k=10) for q in sample]))
        batch_runs.append(len(queries) / timed(
            lambda: [searcher.search_many(queries[i:i + 64], k=10) for i in range(0, len(queries), 64)]))
    o, b = med(one_runs), med(batch_runs)
    print(f"throughput: one at a time {o:.1f} q/s, batched {b:.1f} q/s ({len(queries)} queries), "
          f"ratio {b / o:.2f}x (target >= 2x)")

    if args.build:
        docs = load_corpus(args.corpus)
        if args.build != "all":
            docs = docs[: int(args.build)]
        with tempfile.TemporaryDirectory() as tmp:
            sub = Path(tmp) / "corpus"
            for d in docs:
                (sub / d.source).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(d.path, sub / d.source)
            texts = [embed_text(c) for d in docs for c in chunk_document(d, ChunkSettings())]
            embed_only = timed(lambda: get_embedder(args.embedder).passages(texts))
            full = timed(lambda: build(sub, Path(tmp) / "ix", embedder=args.embedder, rebuild=True))
        print(f"build of {len(docs)} files / {len(texts)} chunks: embedding alone {embed_only:.1f}s, "
              f"full build {full:.1f}s, ratio {full / embed_only:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
