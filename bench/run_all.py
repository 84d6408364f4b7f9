#!/usr/bin/env python3
"""`make bench`: run every benchmark under bench/ in a short configuration, one after another.

    .venv/bin/python bench/run_all.py [--only NAME[,NAME]] [--full]

Each benchmark prints its own figures (medians over runs); this script prints a header per
benchmark, its wall time and its exit status, and exits non-zero if any failed. The short
configurations keep the whole run to minutes on a 2-core machine; `--full` runs each with
its own defaults (see the docstring of each script for what it measures and how long).
A benchmark whose optional part is missing (Chromium, Milvus, Tesseract) says so and skips.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache"
SEEDS_INDEX = CACHE / "seeds-index"
EVAL = ROOT.parent / "shared" / "eval"

# name -> short arguments (placeholders: {seeds_index}, {seed_questions}, {cache})
QUICK: dict[str, list[str]] = {
    "bench_embed": ["-n", "16", "--runs", "2", "--queries", "10", "--batch-queries", "64", "--no-windowed"],
    "bench_search": ["--corpus", "seeds", "--queries", "{seed_questions}", "--runs", "3", "--single", "20",
                     "--index", "{seeds_index}"],
    "bench_cite": ["accuracy", "--index", "{seeds_index}", "--per-variant", "10"],
    "tune_ranking": ["--index", "{seeds_index}", "--queries", "{seed_questions}", "--alphas", "0.3,0.5,0.7"],
    "bench_app": ["--runs", "2", "--no-browser"],
    "bench_load": ["--clients", "4", "--requests", "200", "--max-seconds", "60"],
    "bench_scale": ["--chunks", "20000", "--queries", "100", "--recall-queries", "50"],
    "bench_formats": ["--formats", "txt,pdf,docx,html", "--repeats", "1", "--out", "{cache}/formats"],
    "bench_libraries": ["--seeds-index", "{seeds_index}", "--cmrc-index", "{cmrc_index}", "--out", "{cache}/libraries"],
    "bench_milvus": ["--milvus-index", "{milvus_index}", "--faiss-index", "{seeds_index}",
                     "--queries", "{seed_questions}", "--n", "30", "--repeat", "2"],
    "bench_abuse": ["heavy", "--seconds", "15", "--runs", "1"],
    "bench_spm_ids": [],
}
CMRC_INDEX = CACHE / "cmrc-index"
MILVUS_INDEX = CACHE / "seeds-milvus"


def _build(py: str, corpus: Path, index: Path, *extra: str) -> None:
    """An index for the benchmarks that need one (built once, incremental afterwards)."""
    subprocess.run([py, "-m", "rag", "build", "--corpus", str(corpus), "--index", str(index), *extra],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    ap.add_argument("--full", action="store_true", help="each benchmark's own default configuration")
    args = ap.parse_args()
    names = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "run_all" and not p.stem.startswith("_"))
    if args.only:
        wanted = set(args.only.split(","))
        names = [n for n in names if n in wanted]
    py = sys.executable
    CACHE.mkdir(exist_ok=True)
    _build(py, ROOT / "seeds", SEEDS_INDEX)
    if "bench_libraries" in names:           # CMRC: ~2 minutes of embedding the first time
        _build(py, EVAL / "cmrc" / "corpus", CMRC_INDEX)
    if "bench_milvus" in names:
        try:
            import pymilvus  # noqa: F401
            _build(py, ROOT / "seeds", MILVUS_INDEX, "--backend", "milvus", "--milvus-uri",
                   str(CACHE / "seeds-milvus.db"), "--reuse-vectors", str(SEEDS_INDEX))
        except ImportError:
            print("warning: pymilvus missing (pip install 'rag[milvus]'): bench_milvus skipped")
            names.remove("bench_milvus")
    fill = {"seeds_index": str(SEEDS_INDEX), "seed_questions": str(EVAL / "seed_questions_dev.jsonl"),
            "cache": str(CACHE), "cmrc_index": str(CMRC_INDEX), "milvus_index": str(MILVUS_INDEX)}
    failed = []
    for name in names:
        extra = [] if args.full else [a.format(**fill) for a in QUICK.get(name, [])]
        print(f"\n===== {name} {' '.join(extra)}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.run([py, str(BENCH / f"{name}.py"), *extra], cwd=ROOT).returncode
        print(f"----- {name}: exit {code}, {time.perf_counter() - t0:.0f} s", flush=True)
        if code:
            failed.append(name)
    print(f"\n{len(names) - len(failed)}/{len(names)} benchmarks ran" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
