"""Warm search latency of the web app: through the API (gradio_client) and in a browser.

    .venv/bin/python bench/bench_app.py                      # starts app.py on a copy of seeds
    .venv/bin/python bench/bench_app.py --url http://127.0.0.1:7860/   # a running app

API: wall time of client.predict(q, api_name="/search") (and /cite). Browser: Debian
Chromium via Playwright, from pressing Enter in the question box until the result cards of
that question are in the page. Each query is asked once to warm up, then --runs times.
The machine may be shared: compare medians, and read p90 with that in mind.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

QUERIES = ["四川公安开展的“五大行动”包括哪些内容？", "枫桥经验", "如何打击治理电信网络诈骗犯罪？", "队伍建设",
           "科技信息化", "扫黑除恶", "交通事故预防", "禁毒攻坚", "政治安全", "党的二十大安保"]
QUOTE = "坚持和发展新时代“枫桥经验”，常态化开展矛盾纠纷排查化解"


def stats(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    return (f"{name:<28} n={len(ms):<3} median {statistics.median(ms):6.0f} ms   "
            f"p90 {ms[int(0.9 * (len(ms) - 1))]:6.0f} ms   min {ms[0]:5.0f} ms")


def bench_api(url: str, runs: int) -> list[str]:
    from gradio_client import Client

    c = Client(url, verbose=False, analytics_enabled=False)
    for q in QUERIES:
        c.predict(q, api_name="/search")
    search, cite = [], []
    for _ in range(runs):
        for q in QUERIES:
            t = time.perf_counter()
            c.predict(q, api_name="/search")
            search.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        try:
            c.predict(QUOTE, api_name="/cite")
            cite.append((time.perf_counter() - t) * 1000)
        except Exception:  # noqa: BLE001 - citation lookup may be unavailable
            pass
    out = [stats("API /search", search)]
    if cite:
        out.append(stats("API /cite", cite))
    return out


def bench_browser(url: str, runs: int) -> list[str]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium",
                              args=["--no-sandbox", "--headless", "--disable-gpu",
                                    "--disable-background-networking"])
        pg = b.new_page()
        pg.goto(url)
        box = pg.locator("#rag-query textarea, #rag-query input").first
        box.wait_for()
        pg.wait_for_load_state("networkidle")
        times = []
        for i in range(runs + 1):
            for q in QUERIES:
                q = q + "？" * i                      # a new question each time: no client cache
                box.fill(q)
                t = time.perf_counter()
                box.press("Enter")
                pg.wait_for_function("q => { const m = document.querySelector('#rag-results .rag-meta q');"
                                     " return m && m.textContent === q; }", arg=q, polling=5)
                if i:
                    times.append((time.perf_counter() - t) * 1000)
        b.close()
    return [stats("browser Enter → cards", times)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running app (default: start one on a copy of seeds)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    app = None
    url = args.url
    if not url:
        from app_harness import start_app

        tmp = Path(tempfile.mkdtemp(prefix="bench-app-"))
        print(f"starting app.py on a copy of seeds in {tmp} (builds the index) …", flush=True)
        app = start_app(tmp, tmp, extra_docs={})
        url = app.url
    try:
        lines = bench_api(url, args.runs)
        if not args.no_browser and Path("/usr/bin/chromium").exists():
            lines += bench_browser(url, args.runs)
    finally:
        if app:
            app.stop()
            shutil.rmtree(app.corpus.parent, ignore_errors=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
