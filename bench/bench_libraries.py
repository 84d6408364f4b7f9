#!/usr/bin/env python3
"""Several libraries as one ranking: does asking the union cost quality?

    python bench/bench_libraries.py --seeds-index IDX --cmrc-index IDX [--out DIR] [--k 10]

Asks the seed dev questions and the CMRC trial questions of ../shared/eval (a) of their
own library alone, (b) of the union of both libraries with union-wide BM25 idf (the
app's ranking, rag.web.libraries), (c) of the union with each library's own BM25 scores
merged as they are (naive), writes each run as `rag batch` JSONL and scores it with
../shared/eval/score.py. Prints one table; the issue's bar: union within 0.01 of alone.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag.batchio import Writer, answer, read_items  # noqa: E402
from rag.references import Referencer  # noqa: E402
from rag.web.libraries import Library, LibraryConfig, MultiSearcher  # noqa: E402
from rag.web.live import LiveIndex  # noqa: E402

EVAL = REPO.parent / "shared" / "eval"


def library(name: str, index: str, corpus: Path) -> Library:
    return Library(LibraryConfig(name, corpus, Path(index)), LiveIndex(index, warm=False), None,
                   Referencer(corpus))


def run(ms: MultiSearcher, queries: Path, out: Path, k: int) -> float:
    t0 = time.perf_counter()
    w = Writer(out)
    for _group, records in answer(read_items(queries), ms, k, lambda it, e: None):
        for rec in records:
            w.write(rec)
    w.close()
    return time.perf_counter() - t0


def score(queries: Path, results: Path, corpus: Path) -> dict:
    p = subprocess.run([sys.executable, str(EVAL / "score.py"), "--queries", str(queries), "--results",
                        str(results), "--corpus", str(corpus), "--json"], capture_output=True, text=True,
                       check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds-index", required=True)
    ap.add_argument("--cmrc-index", required=True)
    ap.add_argument("--out", default="/tmp/bench-libraries")
    ap.add_argument("--k", type=int, default=10)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds_corpus, cmrc_corpus = REPO / "seeds", EVAL / "cmrc" / "corpus"
    seeds = library("seeds", a.seeds_index, seeds_corpus)
    cmrc = library("cmrc", a.cmrc_index, cmrc_corpus)
    sets = [("seeds dev", EVAL / "seed_questions_dev.jsonl", seeds_corpus, seeds),
            ("CMRC trial", EVAL / "cmrc" / "queries_trial.jsonl", cmrc_corpus, cmrc)]
    modes = [("alone", lambda own: MultiSearcher([own]))] + [
        (f"union, {m}", lambda own, m=m: MultiSearcher([seeds, cmrc], mode=m)) for m in MultiSearcher.MODES]
    print(f"{'questions':<11} {'libraries':<24} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7} {'s':>6}")
    for label, queries, corpus, own in sets:
        base = None
        for mode, make in modes:
            path = out / f"{label.split()[0].lower()}-{mode.replace(', ', '-')}.jsonl"
            secs = run(make(own), queries, path, a.k)
            s = score(queries, path, corpus)
            base = base or s
            print(f"{label:<11} {mode:<24} {s['recall@1']:>6.4f} {s['recall@5']:>6.4f} {s['recall@10']:>6.4f} "
                  f"{s['mrr@10']:>7.4f} {secs:>6.1f}"
                  + ("" if s is base else f"   ΔR@5 {s['recall@5'] - base['recall@5']:+.4f} "
                                         f"ΔMRR {s['mrr@10'] - base['mrr@10']:+.4f}"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
