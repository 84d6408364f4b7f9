"""The index at scale (issue 13): build, update, open, search, citation lookup and memory for
N chunks of real Chinese text, with embedding excluded.

    python bench/bench_scale.py --chunks 100000 [--json] [--keep DIR]

Corpus: sentences of the seeds and the CMRC passages (../shared/eval/cmrc/corpus),
recombined at random into files of ~12 paragraphs (seeded, reproducible).
Vectors: embedding is excluded and stated. Each chunk gets a stand-in vector with the
structure of real ones, as FAISS's benchmarks do: a mix of two REAL e5-small passage
vectors (of seed/CMRC chunks, from --real-index or embedded once and cached) plus a small
Gaussian perturbation, normalised; queries are REAL e5-small query vectors of the CMRC trial
questions. Recall@10 of the dense leg is measured against exact search over the same
vectors; "fused_top5_exact" is the share of queries whose fused top-5 equals the one with
an exact dense leg.
Each figure comes from a fresh process where it matters (open, first citation lookup,
memory of a query-only process: VmRSS after the searches and lookups).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EVAL = REPO.parent / "shared" / "eval"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag" / "bench"
_SENT = re.compile(r"[^。！？\n]+[。！？]")


# ------------------------------------------------------------------ corpus and vectors

def sentences() -> list[str]:
    out = []
    for folder in (REPO / "seeds", EVAL / "cmrc" / "corpus"):
        for p in sorted(folder.glob("*.txt")):
            out += [s.strip() for s in _SENT.findall(p.read_text(encoding="utf-8")) if 8 <= len(s.strip()) <= 160]
    return out


def write_file(path: Path, rng: random.Random, sents: list[str], paragraphs: int = 12) -> None:
    title = rng.choice(sents)[:18].rstrip("。！？，")
    paras = ["".join(rng.choice(sents) for _ in range(rng.randint(2, 4))) for _ in range(paragraphs)]
    path.write_text(title + "\n\n" + "\n\n".join(paras) + "\n", encoding="utf-8")


def make_corpus(root: Path, n_chunks: int, seed: int = 13) -> int:
    """Files until the chunker makes about n_chunks; returns the number of files."""
    from rag.chunks import ChunkSettings, chunk_document
    from rag.documents.corpus import read_document

    sents = sentences()
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    probe = root / "probe.txt"
    per = []
    for _ in range(20):
        write_file(probe, rng, sents)
        per.append(len(chunk_document(read_document(root, probe), ChunkSettings())))
    probe.unlink()
    n_files = max(1, round(n_chunks / statistics.mean(per)))
    for i in range(n_files):
        d = root / f"d{i // 1000:03d}"
        d.mkdir(exist_ok=True)
        write_file(d / f"f{i:07d}.txt", rng, sents)
    return n_files


def real_vectors(real_index: str | None) -> np.ndarray:
    """Real e5-small passage vectors of seed/CMRC chunks: from an index built with e5-small,
    else embedded once (600 sampled chunks, a minute or two) and cached."""
    if real_index:
        from rag.index import load

        idx = load(real_index)
        return np.asarray(idx.dense.vectors(np.arange(idx.size)), dtype=np.float32)
    cached = CACHE / "real_e5_passages.npy"
    if cached.exists():
        return np.load(cached)
    from rag.embed import get_embedder

    sents = sentences()
    rng = random.Random(5)
    texts = ["".join(rng.choice(sents) for _ in range(3)) for _ in range(600)]
    v = get_embedder("e5-small").passages(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cached, v)
    return v


class StandIn:
    """Passage vectors with the structure of real ones (see the module docstring); it
    claims e5-small's id so that the index is searched with real e5-small query vectors."""

    def __init__(self, real: np.ndarray) -> None:

        self.real = np.asarray(real, dtype=np.float32)
        self.dim = real.shape[1]
        self.noise = np.random.default_rng(13).normal(0, 0.02, (65536, self.dim)).astype(np.float32)
        self.id = "e5-small:intfloat/multilingual-e5-small:fp32"

    def passages(self, texts, progress: bool = False) -> np.ndarray:
        """Deterministic per text (an update re-makes the same vector): a 64-bit hash picks
        the two real vectors and one of 65,536 fixed Gaussian perturbations (vectorised:
        ~1 s per 100k chunks, so the stand-in costs little of the build it stands in for)."""
        h = np.fromiter((int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little")
                         for t in texts), dtype=np.uint64, count=len(texts))
        n = np.uint64(len(self.real))
        a, b = (h % n).astype(np.int64), ((h >> np.uint64(21)) % n).astype(np.int64)
        z = ((h >> np.uint64(42)) % np.uint64(len(self.noise))).astype(np.int64)
        v = 0.75 * self.real[a] + 0.25 * self.real[b] + self.noise[z]
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    def queries(self, texts):
        raise NotImplementedError


def query_vectors(n: int) -> tuple[list[str], np.ndarray]:
    qs = [json.loads(l)["query"] for l in (EVAL / "cmrc" / "queries_trial.jsonl").read_text(encoding="utf-8").splitlines()]
    qs = qs[:n]
    cached = CACHE / f"cmrc_query_vectors_{n}.npy"
    if cached.exists():
        return qs, np.load(cached)
    from rag.embed import get_embedder

    v = get_embedder("e5-small").queries(qs)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cached, v)
    return qs, v


# ------------------------------------------------------------------ child processes

def mem_mb() -> dict[str, float]:
    """VmRSS (what `query_rss_mb` reports: it counts the memory-mapped index pages a query
    touched, which the kernel reclaims under pressure) and its parts: RssAnon (memory the
    process itself holds), RssFile (mapped file pages)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
            out[key] = int(line.split()[1]) / 1024
    return out


def rss_mb() -> float:
    return mem_mb().get("VmRSS", 0.0)


def child_build(args) -> dict:
    """Build (embedding by the stand-in) in this process: seconds and peak memory."""
    import rag.index.builder as builder

    real = real_vectors(args.real_index)
    standin = StandIn(real)
    builder.get_embedder = lambda spec: standin
    t0 = time.perf_counter()
    rep = builder.build(args.corpus, args.index, embedder="e5-small")
    dt = time.perf_counter() - t0
    return {"seconds": dt, "chunks": rep.chunks, "embedded": rep.embedded,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child_update(args) -> dict:
    """Add, change and delete one file: seconds of each `build` (stand-in embedding)."""
    import rag.index.builder as builder

    standin = StandIn(real_vectors(args.real_index))
    builder.get_embedder = lambda spec: standin
    sents = sentences()
    rng = random.Random(99)
    out = {}
    # the figures: `rag build` finds the change by scanning the corpus; then the same
    # updates told which file changed (`rag build --only FILE`, the web app's add/remove)
    for only in (False, True):
        f = Path(args.corpus) / ("zz-new-only.txt" if only else "zz-new.txt")
        for what in ("add", "change", "delete"):
            if what == "delete":
                f.unlink()
            else:
                write_file(f, rng, sents)
            t0 = time.perf_counter()
            rep = builder.build(args.corpus, args.index, only=[f.name] if only else None)
            key = what + ("_only" if only else "")
            out[key] = time.perf_counter() - t0
            out[key + "_report"] = rep.summary()
    return out


def child_query(args) -> dict:
    """A query-only process: open, search, cite; then its memory."""
    t0 = time.perf_counter()
    from rag.cite import Citer
    from rag.index import load
    from rag.search import Searcher
    t_imp = time.perf_counter() - t0
    t0 = time.perf_counter()
    idx = load(args.index)
    open_s = time.perf_counter() - t0
    qs, qv = query_vectors(args.queries)
    s = Searcher(idx)
    # citation quotes: 20-40 characters of random chunks (exact or with one typo)
    rng = random.Random(7)
    pos = rng.sample(range(idx.size), min(60, idx.size))
    quotes = []
    for c in idx.store.chunks(pos):
        t = c.text.replace("\n", "")
        a = rng.randint(0, max(0, len(t) - 40))
        quotes.append(t[a:a + rng.randint(20, 40)])
    cit = Citer(idx, s)
    t0 = time.perf_counter()
    cit.find(quotes[0])
    cite_first = time.perf_counter() - t0
    lat = []
    for q in quotes[1:]:
        t0 = time.perf_counter()
        cit.find(q)
        lat.append(time.perf_counter() - t0)
    # search: warm-up, then single queries with their real vectors (embedding excluded)
    s.search_many(qs[:5], k=10, vectors=qv[:5])
    times = []
    fused = []
    for i, q in enumerate(qs):
        t0 = time.perf_counter()
        r = s.search_many([q], k=10, vectors=qv[i:i + 1])[0]
        times.append(time.perf_counter() - t0)
        fused.append([(x.source, x.start) for x in r[:5]])
    mem = mem_mb()
    rss = mem.get("VmRSS", 0.0)
    # dense recall@10 and fused top-5 against exact search over the same vectors
    n_eval = min(len(qs), args.recall_queries)
    approx = idx.dense.search(qv[:n_eval], 10)
    exact_top = exact_search(idx, qv[:n_eval], max(10, s.fusion.candidates))
    recall = float(np.mean([len(set(a[a >= 0]) & set(e[:10])) / 10 for a, e in zip(approx, exact_top)]))
    real_dense = idx.dense

    class Exact:
        ntotal = real_dense.ntotal

        def search(self, queries, k):
            return exact_search(idx, queries, k)

        def __getattr__(self, name):
            return getattr(real_dense, name)

    idx.dense = Exact()
    same = 0
    for i in range(n_eval):
        r = s.search_many([qs[i]], k=10, vectors=qv[i:i + 1])[0]
        same += [(x.source, x.start) for x in r[:5]] == fused[i]
    idx.dense = real_dense
    return {"open_s": open_s, "import_s": t_imp, "search_ms": [t * 1000 for t in times],
            "cite_first_ms": cite_first * 1000, "cite_ms": [t * 1000 for t in lat], "rss_mb": rss,
            "rss_anon_mb": mem.get("RssAnon", 0.0), "rss_file_mb": mem.get("RssFile", 0.0),
            "dense_recall_at_10": recall, "fused_top5_exact": same / n_eval, "eval_queries": n_eval,
            "segments": [(sg["name"], sg["rows"], sg["dense"].get("ann")) for sg in idx.manifest["segments"]],
            "torch_loaded": "torch" in sys.modules, "tokenizers_loaded": "tokenizers" in sys.modules,
            "chunks": idx.size}


def exact_search(idx, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k over every live vector (blocks of the memory maps)."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_p = np.full((len(queries), k), -1, dtype=np.int64)
    for s, seg in enumerate(idx.segments):
        rows = idx.dense.live.live_rows[s]
        for a in range(0, len(rows), 100_000):
            r = rows[a:a + 100_000]
            sc = (seg.dense.vectors(r) @ queries.T).T
            p = idx.dense.live.row2pos[s][r]
            S = np.hstack([best_s, sc])
            P = np.hstack([best_p, np.broadcast_to(p, sc.shape)])
            o = np.argsort(-S, axis=1, kind="stable")[:, :k]
            best_s, best_p = np.take_along_axis(S, o, axis=1), np.take_along_axis(P, o, axis=1)
    return best_p


def run_child(kind: str, args, extra: list[str] = ()) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--corpus", str(args.corpus), "--index", str(args.index),
           "--queries", str(args.queries), "--recall-queries", str(args.recall_queries), *extra]
    if args.real_index:
        cmd += ["--real-index", args.real_index]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO)}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", help="work folder to keep (default: a temporary one, removed)")
    ap.add_argument("--reuse", action="store_true",
                    help="with --keep: update and query the index already there (no build figures)")
    ap.add_argument("--real-index", help="an e5-small index whose vectors serve as the real sample")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--recall-queries", type=int, default=200)
    ap.add_argument("--child")
    ap.add_argument("--corpus")
    ap.add_argument("--index")
    args = ap.parse_args()
    if args.child:
        fn = {"build": child_build, "update": child_update, "query": child_query}[args.child]
        print(json.dumps(fn(args)))
        return 0
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    args.corpus, args.index = work / "corpus", work / "index"
    try:
        real_vectors(args.real_index), query_vectors(args.queries)       # cached before timing
        if not args.corpus.exists():
            make_corpus(args.corpus, args.chunks)
        if args.reuse and (args.index / "CURRENT").exists():
            b = {"chunks": None, "seconds": None, "peak_mb": None}
        else:
            shutil.rmtree(args.index, ignore_errors=True)
            b = run_child("build", args)
        u = run_child("update", args)
        q = run_child("query", args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    fig = {
        "chunks": b["chunks"] or q["chunks"],
        "build_chunks_per_s": round(b["chunks"] / b["seconds"], 1) if b["seconds"] else None,
        "build_peak_mb": round(b["peak_mb"]) if b["peak_mb"] else None, "add_file_s": round(u["add"], 2),
        "change_file_s": round(u["change"], 2), "delete_file_s": round(u["delete"], 2),
        "open_s": round(q["open_s"], 3), "search_p50_ms": round(pct(q["search_ms"], 50), 1),
        "search_p99_ms": round(pct(q["search_ms"], 99), 1), "dense_recall_at_10": round(q["dense_recall_at_10"], 4),
        "cite_p50_ms": round(pct(q["cite_ms"], 50), 1), "cite_first_ms": round(q["cite_first_ms"], 1),
        "query_rss_mb": round(q["rss_mb"]),
    }
    extra = {"fused_top5_exact": round(q["fused_top5_exact"], 4), "eval_queries": q["eval_queries"],
             "build_s": round(b["seconds"], 1) if b["seconds"] else None, "segments": q["segments"],
             "query_rss_anon_mb": round(q["rss_anon_mb"]), "query_rss_file_mb": round(q["rss_file_mb"]),
             "torch_loaded": q["torch_loaded"], "tokenizers_loaded": q["tokenizers_loaded"],
             "updates_told_the_file_s": {k: round(u[k + "_only"], 2) for k in ("add", "change", "delete")},
             "updates": {k: v for k, v in u.items() if k.endswith("_report")},
             "vectors": "stand-in: 0.75*real + 0.25*real + N(0, 0.02) (one of 65,536 fixed draws) e5-small passage vectors, normalised; "
                        "queries: real e5-small vectors of CMRC trial questions; embedding time excluded",
             "search": "hybrid ranking of one query with its vector given (query embedding excluded)"}
    if args.json:       # exactly the keys on stdout; the rest on stderr
        print(json.dumps(fig, ensure_ascii=False))
        print(json.dumps(extra, ensure_ascii=False), file=sys.stderr)
    else:
        for k, v in fig.items():
            print(f"{k:22s} {v}")
        for k, v in extra.items():
            print(f"{k:22s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
