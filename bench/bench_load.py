"""Load test of the web app: many clients searching at once, optionally while the index is
rebuilt underneath.

    .venv/bin/python bench/bench_load.py --clients 8 --requests 2000 --max-seconds 300
    .venv/bin/python bench/bench_load.py --clients 8 --requests 2000 --during-build

Starts the real app (app.py in a subprocess, loopback only, a free port) on a copy of the
seed corpus, then N client threads, each with its own gradio_client Client, send /search
requests (questions with a known answer file) until --requests are done in all or
--max-seconds pass. Reports throughput, p50/p90/p99 latency, failed and wrong answers (must
be 0), and the app process's RSS (psutil if installed, else /proc/<pid>/status) at start,
middle and end, with its peak, to show that memory stays flat.

--during-build: after a quarter of the requests, a new document is added to the corpus copy
and `rag build` (a separate process, as a user would run it) updates the same index while
the load goes on. Every answer during and after must still come from the right file; the
app must serve the new generation without a restart, and the new document's question must
then be answered from it. Exit code 0 only when every check passed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SICHUAN, GUANGDONG = "000_9fefdf128692389e.txt", "003_8750069abcf0ab7e.txt"
QUESTIONS = {     # question -> the file its best passage comes from
    "四川公安开展的“五大行动”包括哪些内容？": SICHUAN,
    "广东公安如何为党的二十大营造安全稳定的环境？": GUANGDONG,
    "为实现“十五五”良好开局贡献公安力量": SICHUAN,
    "青海公安如何维护藏区稳定？": GUANGDONG,
    "公安机关新质战斗力提升工程": SICHUAN,
    "尽职履责护稳定 喜迎党的二十大": GUANGDONG,
}
NEW_FILE = "zz_load_new.txt"
NEW_DOC = ("大漠边关的骆驼巡逻队\n\n额济纳旗公安局副局长\n赵勇\n\n"
           "额济纳旗地处巴丹吉林沙漠边缘，边境线漫长，许多路段车辆无法通行。旗公安局组建骆驼巡逻队，"
           "民警牵着骆驼在沙丘间巡逻，检查过往人员证件，救助在沙漠中迷路的游客。\n\n"
           "每年胡杨林景区游客高峰期间，骆驼巡逻队还承担景区治安巡逻和交通疏导任务，沿途设置临时警务点，"
           "全年共救助被困游客六十余人。\n")
NEW_QUESTION = "额济纳旗的骆驼巡逻队在沙漠里救助迷路游客"


def rss_kb(pid: int) -> int:
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss // 1024
    except ImportError:
        pass
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class Record:
    t0: float                 # start, seconds since the load began
    ms: float
    question: str
    ok: bool
    source: str = ""
    generation: str = ""
    error: str = ""


@dataclass
class Load:
    total: int
    deadline: float
    records: list[Record] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    issued: int = 0
    start: float = 0.0

    def take(self) -> int | None:
        with self.lock:
            if self.issued >= self.total or time.monotonic() > self.deadline:
                return None
            self.issued += 1
            return self.issued - 1

    def add(self, r: Record) -> None:
        with self.lock:
            self.records.append(r)

    @property
    def done(self) -> int:
        with self.lock:
            return len(self.records)


def client_loop(client, load: Load, questions: list[str]) -> None:
    while (i := load.take()) is not None:
        q = questions[i % len(questions)]
        t = time.perf_counter()
        start = time.monotonic() - load.start
        try:
            out = client.predict(q, 5, api_name="/search")
            res = out["results"]
            load.add(Record(start, (time.perf_counter() - t) * 1000, q, bool(res),
                            res[0]["source"] if res else "", out.get("generation", ""),
                            "" if res else "no results"))
        except Exception as e:  # noqa: BLE001 - every failure is counted and shown
            load.add(Record(start, (time.perf_counter() - t) * 1000, q, False,
                            error=f"{type(e).__name__}: {str(e)[:200]}"))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=2000, help="in all clients together")
    ap.add_argument("--max-seconds", type=float, default=300, help="stop issuing requests after this")
    ap.add_argument("--during-build", action="store_true", help="run `rag build` on the index during the load")
    ap.add_argument("--corpus", default=str(ROOT / "seeds"), help="corpus to copy (default: seeds)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)
    if not (1 <= args.clients <= 64 and 1 <= args.requests <= 100_000 and 0 < args.max_seconds <= 3600):
        ap.error("bounds: 1-64 clients, 1-100000 requests, at most 3600 s")

    from app_harness import AppProcess, free_port, writable_copy
    from gradio_client import Client

    from rag.index import read_current

    work = Path(tempfile.mkdtemp(prefix="rag-load-"))
    corpus = writable_copy(Path(args.corpus), work / "corpus")
    index = work / "index"
    t = time.monotonic()
    app = AppProcess(corpus, index, free_port(), work / "app.log")    # binds 127.0.0.1 only
    problems: list[str] = []
    try:
        app.wait_ready(timeout=600)
        print(f"app ready in {time.monotonic() - t:.1f}s at {app.url} (pid {app.proc.pid}), "
              f"index {read_current(index)}", flush=True)
        clients = [Client(app.url, verbose=False, analytics_enabled=False) for _ in range(args.clients)]
        questions = list(QUESTIONS)
        for q, want in QUESTIONS.items():                                  # warm-up and sanity
            got = clients[0].predict(q, 5, api_name="/search")["results"][0]["source"]
            if got != want:
                problems.append(f"warm-up: {q!r} answered from {got}, expected {want}")
        if args.during_build:
            questions.append(NEW_QUESTION)
        rss: list[tuple[float, int]] = []
        load = Load(args.requests, time.monotonic() + args.max_seconds)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                rss.append((time.monotonic() - load.start, rss_kb(app.proc.pid)))
                stop.wait(0.5)

        build_info: dict = {}

        def rebuild() -> None:
            while load.done < args.requests // 4 and not stop.is_set():
                time.sleep(0.05)
            (corpus / NEW_FILE).write_text(NEW_DOC, encoding="utf-8")
            b0 = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "rag", "build", "--corpus", str(corpus),
                                   "--index", str(index)], cwd=ROOT, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONIOENCODING": "utf-8"})
            build_info.update(start=b0 - load.start, end=time.monotonic() - load.start,
                              code=proc.returncode, out=proc.stdout.strip(), err=proc.stderr.strip()[-500:],
                              generation=read_current(index))

        load.start = time.monotonic()
        threads = [threading.Thread(target=client_loop, args=(c, load, questions), daemon=True) for c in clients]
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        builder = threading.Thread(target=rebuild, daemon=True) if args.during_build else None
        for th in threads:
            th.start()
        if builder:
            builder.start()
        for th in threads:
            th.join()
        wall = time.monotonic() - load.start
        if builder:
            builder.join(timeout=600)
        stop.set()
        sampler.join()

        recs = load.records
        ok = [r for r in recs if r.ok]
        failed = [r for r in recs if not r.ok]
        wrong = [r for r in ok if r.question in QUESTIONS and r.source != QUESTIONS[r.question]]
        ms = [r.ms for r in ok]
        print(f"\n{len(recs)} requests from {args.clients} clients in {wall:.1f}s: "
              f"{len(ok) / wall:.1f} answered/s; failed {len(failed)}, wrong answers {len(wrong)}")
        if ms:
            print(f"latency ms: p50 {pct(ms, 50):.0f}  p90 {pct(ms, 90):.0f}  p99 {pct(ms, 99):.0f}  "
                  f"mean {statistics.fmean(ms):.0f}  max {max(ms):.0f}")
        if rss:
            mid = min(rss, key=lambda x: abs(x[0] - wall / 2))
            print(f"app RSS MB: start {rss[0][1] / 1024:.0f}  middle {mid[1] / 1024:.0f}  "
                  f"end {rss[-1][1] / 1024:.0f}  peak {max(x[1] for x in rss) / 1024:.0f} "
                  f"({len(rss)} samples)")
        for r in failed[:5]:
            problems.append(f"failed at {r.t0:.1f}s: {r.question!r}: {r.error}")
        for r in wrong[:5]:
            problems.append(f"wrong answer at {r.t0:.1f}s ({r.generation}): {r.question!r} from {r.source}")
        if len(recs) < args.requests:
            print(f"note: stopped at --max-seconds {args.max_seconds:.0f} after {len(recs)} requests")

        if args.during_build:
            b = build_info
            if b.get("code") != 0:
                problems.append(f"rag build failed ({b.get('code')}): {b.get('err')}")
            else:
                new_gen = b["generation"]
                during = [r for r in recs if b["start"] <= r.t0 <= b["end"]]
                after = [r for r in recs if r.t0 > b["end"]]
                gens = sorted({r.generation for r in ok})
                print(f"build {b['start']:.1f}s-{b['end']:.1f}s into the load: {b['out']}")
                print(f"  requests during the build {len(during)} (failed {sum(not r.ok for r in during)}), "
                      f"after it {len(after)} (failed {sum(not r.ok for r in after)}); generations served {gens}")
                first_new = min((r.t0 for r in ok if r.generation == new_gen), default=None)
                if first_new is None:
                    problems.append(f"the app never served {new_gen} during the load")
                else:
                    print(f"  first answer from {new_gen} at {first_new:.1f}s "
                          f"({first_new - b['end']:+.1f}s after the build finished)")
                stale = [r for r in ok if r.t0 > b["end"] + 15 and r.generation != new_gen]
                if stale:
                    problems.append(f"{len(stale)} answers still from an old generation >15 s after the build")
                new_wrong = [r for r in ok if r.question == NEW_QUESTION and r.generation == new_gen
                             and r.source != NEW_FILE]
                if new_wrong:
                    problems.append(f"{len(new_wrong)} answers to the new question from {new_gen} "
                                    f"not from {NEW_FILE}")
                final = clients[0].predict(NEW_QUESTION, 5, api_name="/search")
                print(f"  after the load: {final['generation']}, new question answered from "
                      f"{final['results'][0]['source']}")
                if final["generation"] != new_gen or final["results"][0]["source"] != NEW_FILE:
                    problems.append("the app does not serve the new generation after the build")
        print(f"  app log tail: {' | '.join(app.output().strip().splitlines()[-3:])}")
    finally:
        app.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder kept: {work}")
    for p in problems:
        print("PROBLEM:", p)
    print("result:", "ok" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
