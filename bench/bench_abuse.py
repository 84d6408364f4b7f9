"""The web app under abuse (issue 16): heavy clients, raw HTTP calls, many batches.

    .venv/bin/python bench/bench_abuse.py heavy --heavy-clients 8 --seconds 40 --runs 3
    .venv/bin/python bench/bench_abuse.py raw --calls 5000
    .venv/bin/python bench/bench_abuse.py batches --batches 100 [--temp-max-mb 20]

heavy:   N clients (own gradio_client sessions) loop on 4,000-character queries at k=100
         while one client asks normal questions; prints the normal query's p50/p90 (aim:
         p50 under 1 s) and what the heavy clients got (answered, refused with 429).
raw:     POST + GET /gradio_api/call/search N times with plain HTTP (a new Gradio session
         each, as curl would), then the app's RSS growth (aim: under 50 MB).
batches: N batches of 50 questions at k=10 through /batch; the app's temp folder size
         (TMPDIR of the app) after them, with the limit RAG_TEMP_MAX_MB.

Each starts the real app (app.py, loopback, free port) on a copy of the seeds.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

NORMAL = ["四川公安开展的“五大行动”包括哪些内容？", "广东公安如何为党的二十大营造安全稳定的环境？",
          "公安机关新质战斗力提升工程", "青海公安如何维护藏区稳定？"]


def long_query(n: int = 4000) -> str:
    text = "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "seeds").glob("*.txt")))
    text = text.replace("\n", " ")
    return (text * (n // max(len(text), 1) + 1))[1000:1000 + n] if len(text) > n + 1000 else text[:n]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def start(work: Path, env: dict | None = None):
    from app_harness import AppProcess, free_port, writable_copy

    corpus = writable_copy(ROOT / "seeds", work / "corpus")
    app = AppProcess(corpus, work / "index", free_port(), work / "app.log", env)
    app.wait_ready(timeout=600)
    return app


def heavy(args) -> int:
    from gradio_client import Client

    work = Path(tempfile.mkdtemp(prefix="rag-abuse-"))
    app = start(work)
    big = long_query(4000)
    assert len(big) == 4000, len(big)
    p50s = []
    try:
        for run in range(args.runs):
            stop = threading.Event()
            got = {"ok": 0, "busy": 0, "other": 0}
            lock = threading.Lock()

            def loop() -> None:
                c = Client(app.url, verbose=False, analytics_enabled=False)
                while not stop.is_set():
                    try:
                        c.predict(big, 100, api_name="/search")
                        key = "ok"
                    except Exception as e:  # noqa: BLE001
                        key = "busy" if "繁忙" in str(e) or "busy" in str(e) else "other"
                    with lock:
                        got[key] += 1

            threads = [threading.Thread(target=loop, daemon=True) for _ in range(args.heavy_clients)]
            for t in threads:
                t.start()
            time.sleep(3)                                   # let the heavy load build up
            normal = Client(app.url, verbose=False, analytics_enabled=False)
            ms = []
            t_end = time.monotonic() + args.seconds
            i = 0
            while time.monotonic() < t_end:
                t0 = time.perf_counter()
                out = normal.predict(NORMAL[i % len(NORMAL)], 5, api_name="/search")
                ms.append((time.perf_counter() - t0) * 1000)
                assert out["results"], "normal query without results"
                i += 1
                time.sleep(0.2)
            stop.set()
            for t in threads:
                t.join(timeout=60)
            p50s.append(pct(ms, 50))
            print(f"run {run + 1}: normal query p50 {pct(ms, 50):.0f} ms  p90 {pct(ms, 90):.0f} ms  "
                  f"max {max(ms):.0f} ms ({len(ms)} queries); heavy clients {args.heavy_clients}: "
                  f"answered {got['ok']}, refused busy {got['busy']}, other errors {got['other']}", flush=True)
        print(f"median over {args.runs} runs: normal p50 {statistics.median(p50s):.0f} ms")
    finally:
        app.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0 if statistics.median(p50s) < 1000 else 1


def _raw_call(conn: http.client.HTTPConnection, query: str) -> bool:
    conn.request("POST", "/gradio_api/call/search", json.dumps({"data": [query]}),
                 {"content-type": "application/json"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        return False
    eid = json.loads(body)["event_id"]
    conn.request("GET", f"/gradio_api/call/search/{eid}")
    r = conn.getresponse()
    out = r.read().decode("utf-8", "replace")
    return "event: complete" in out


def raw(args) -> int:
    from bench_load import rss_kb

    work = Path(tempfile.mkdtemp(prefix="rag-abuse-"))
    app = start(work)
    try:
        port = int(app.url.rsplit(":", 1)[1].strip("/"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start_rss = rss_kb(app.proc.pid)
        # Warm-up: fill what is bounded by design (the session LRU of MAX_SESSIONS, the
        # searcher's per-chunk sentence cache, ONNX Runtime's arena for new query lengths),
        # so that the measured calls show whether memory keeps growing with calls.
        for i in range(args.warmup):
            _raw_call(conn, NORMAL[i % len(NORMAL)] + f" w{i}")
        time.sleep(1)
        before = rss_kb(app.proc.pid)
        t0 = time.monotonic()
        ok = 0
        marks = []
        for i in range(args.calls):
            ok += _raw_call(conn, NORMAL[i % len(NORMAL)] + f" {i}")
            if (i + 1) % max(1, args.calls // 5) == 0:
                marks.append((i + 1, rss_kb(app.proc.pid) / 1024))
        wall = time.monotonic() - t0
        time.sleep(2)
        after = rss_kb(app.proc.pid)
        print(f"{args.calls} raw POST+GET /gradio_api/call/search in {wall:.0f}s ({ok} answered); "
              f"RSS before {before / 1024:.0f} MB, after {after / 1024:.0f} MB, "
              f"growth {(after - before) / 1024:+.1f} MB")
        print("  RSS along the way (calls, MB): " + ", ".join(f"{n}: {m:.0f}" for n, m in marks))
        print(f"  from start (before the {args.warmup} warm-up calls): {start_rss / 1024:.0f} MB -> "
              f"{after / 1024:.0f} MB, {(after - start_rss) / 1024:+.1f} MB")
    finally:
        app.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok == args.calls and (after - before) / 1024 < 50 else 1


def du(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


def batches(args) -> int:
    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="rag-abuse-"))
    tmpdir = work / "tmp"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir), "RAG_TEMP_MAX_MB": str(args.temp_max_mb)}
    if args.temp_ttl:
        env["RAG_TEMP_TTL"] = str(args.temp_ttl)
    app = start(work, env)
    try:
        qfile = work / "questions.txt"
        qs = [f"{NORMAL[i % len(NORMAL)]} 第{i}问" for i in range(args.questions)]
        qfile.write_text("\n".join(qs) + "\n", encoding="utf-8")
        c = Client(app.url, verbose=False, analytics_enabled=False)
        sizes = []
        t0 = time.monotonic()
        refused = 0
        jsonl = None
        for i in range(args.batches):
            try:
                _status, out, _csv = c.predict(handle_file(str(qfile)), 10, api_name="/batch")
            except Exception as e:  # noqa: BLE001 - an upload refused (507) while the folder is full
                refused += 1
                print(f"batch {i + 1}: refused: {str(e)[:120]}")
                continue
            if out:
                jsonl = out
            else:
                refused += 1
            if (i + 1) % max(1, args.batches // 5) == 0:
                sizes.append((i + 1, du(tmpdir) / 2**20))
        wall = time.monotonic() - t0
        one = Path(jsonl).stat().st_size if jsonl else 0
        print(f"{args.batches} batches of {args.questions} questions at k=10 in {wall:.0f}s "
              f"({refused} refused: temp folder full); "
              f"one batch's JSONL {one / 2**20:.2f} MB")
        print(f"app temp folder (RAG_TEMP_MAX_MB={args.temp_max_mb}): "
              + ", ".join(f"after {n}: {m:.1f} MB" for n, m in sizes))
        final = du(tmpdir) / 2**20
    finally:
        app.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0 if final <= args.temp_max_mb else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("heavy")
    h.add_argument("--heavy-clients", type=int, default=8)
    h.add_argument("--seconds", type=float, default=40)
    h.add_argument("--runs", type=int, default=3)
    r = sub.add_parser("raw")
    r.add_argument("--calls", type=int, default=5000)
    r.add_argument("--warmup", type=int, default=1000, help="raw calls before the measured ones (fill bounded caches)")
    b = sub.add_parser("batches")
    b.add_argument("--batches", type=int, default=100)
    b.add_argument("--questions", type=int, default=50)
    b.add_argument("--temp-max-mb", type=int, default=1024)
    b.add_argument("--temp-ttl", type=int, default=0, help="RAG_TEMP_TTL for the app (default: its own)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return {"heavy": heavy, "raw": raw, "batches": batches}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
