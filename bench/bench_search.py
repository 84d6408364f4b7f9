"""Search speed, measured in one process against baselines run in the same process.

    python bench/bench_search.py [--corpus DIR] [--queries Q.jsonl] [--runs 5] [--build N|all]

Prints medians over `--runs` runs of:
  * warm single-query search latency vs the time to embed that query alone (target <= 1.5x);
  * batch throughput (rag batch's path: groups of 256, the next group embedded while this one
    is ranked) vs one-query-at-a-time (>= 2x), both producing result dicts;
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

from rag.batchio import Item, answer  # noqa: E402
from rag.chunks.chunker import ChunkSettings, chunk_document, embed_text  # noqa: E402
from rag.documents import load_corpus  # noqa: E402
from rag.embed import get_embedder  # noqa: E402
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

    # Both sides produce result dicts as `rag query --json` / `rag batch` write them.
    items = [Item(line=i, id=str(i), query=q, extra={}) for i, q in enumerate(queries)]
    sample = queries[:100]

    def one_at_a_time() -> None:
        for q in sample:
            [r.to_dict() for r in searcher.search(q, k=10)]

    def batched() -> None:
        for _ in answer(iter(items), searcher, 10, lambda it, e: None):
            pass

    def unpipelined() -> None:
        for i in range(0, len(queries), 256):
            [[r.to_dict() for r in res] for res in searcher.search_many(queries[i:i + 256], k=10)]

    one_runs, batch_runs, plain_runs = [], [], []
    for _ in range(args.runs):
        one_runs.append(len(sample) / timed(one_at_a_time))
        batch_runs.append(len(queries) / timed(batched))
        plain_runs.append(len(queries) / timed(unpipelined))
    o, b, p = med(one_runs), med(batch_runs), med(plain_runs)
    print(f"throughput: one at a time {o:.1f} q/s, batched {b:.1f} q/s ({len(queries)} queries, "
          f"rag batch's path), ratio {b / o:.2f}x (target >= 2x); "
          f"without overlapping embedding and ranking {p:.1f} q/s ({p / o:.2f}x)")

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
            get_embedder(args.embedder).passages(texts[:2])  # load the passage model outside the timing
            embed_only = timed(lambda: get_embedder(args.embedder).passages(texts))
            full = timed(lambda: build(sub, Path(tmp) / "ix", embedder=args.embedder, rebuild=True))
        print(f"build of {len(docs)} files / {len(texts)} chunks: embedding alone {embed_only:.1f}s, "
              f"full build {full:.1f}s, ratio {full / embed_only:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
