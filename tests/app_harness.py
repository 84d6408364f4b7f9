"""Start the real web app (app.py) in a subprocess for end-to-end and browser tests.

Each test module starts one app on a fresh writable copy of the seeds. It starts from a copy
of the session's seed index (conftest's `seed_index`), which the app brings up to date on
start as it would any stale index: the corpus path differs and a document is added, so it
re-chunks and embeds only the new document, reusing every other vector.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
START_TIMEOUT = 240.0

# A document carrying markup: the app must show it as text, never run it.
XSS_DOC = "zz_markup_test.txt"
EXTRA_DOCS = {XSS_DOC: (
    "网页转义检验文档\n\n测试组\n\n"
    "本段落检验网页是否转义文档中的标记：<script>alert(\"doc-xss\")</script> 以及 "
    "<img src=x onerror=\"alert('img-xss')\"> 都必须原样显示为文字，不能被浏览器执行。"
    "模板语法 ${7*7} 与 {{value}} 也应原样显示。\n")}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def writable_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for p in dst.rglob("*"):
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dst


class AppProcess:
    def __init__(self, corpus: Path, index: Path, port: int, log: Path, env: dict | None = None):
        self.corpus, self.index, self.port, self.log_path = corpus, index, port, log
        self.url = f"http://127.0.0.1:{port}/"
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("RAG_AUTH", "RAG_AUTH_FILE", "RAG_DEBUG", "RAG_CORPUS", "RAG_INDEX")}
        full_env.update({"PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"})
        full_env.update(env or {})
        self._log = open(log, "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "app.py"), "--corpus", str(corpus), "--index", str(index),
             "--port", str(port)],
            cwd=REPO, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.monotonic()

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
            if "网页已就绪 ready: " in self.output():
                try:
                    with urllib.request.urlopen(self.url + "config", timeout=5):
                        return time.monotonic() - self.started
                except urllib.error.HTTPError:           # e.g. 401 behind a login: it is up
                    return time.monotonic() - self.started
                except OSError:
                    pass
            time.sleep(0.3)
        out = self.output()
        self.stop()
        raise RuntimeError(f"app not ready after {timeout:.0f}s:\n{out[-4000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)       # our own child, by pid
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def start_app(tmp: Path, base_index: Path | None = None,
              extra_docs: dict[str, str] | None = EXTRA_DOCS, env: dict | None = None) -> AppProcess:
    """A running app on a writable copy of the seeds (plus `extra_docs`) in `tmp`, starting
    from a copy of `base_index` when given (else it builds the index from nothing)."""
    corpus = writable_copy(SEEDS, tmp / "corpus")
    for name, text in (extra_docs or {}).items():
        (corpus / name).write_text(text, encoding="utf-8")
    index = tmp / "index"
    if base_index is not None:
        shutil.copytree(base_index, index, ignore=shutil.ignore_patterns(".lock"))
    app = AppProcess(corpus, index, free_port(), tmp / "app.log", env)
    try:
        app.wait_ready()
    except Exception:
        app.stop()
        raise
    return app


def read_raw(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


class Hammer:
    """Searches in a background thread until stopped; records failures (for live reloads)."""

    def __init__(self, client, query: str):
        self.client, self.query = client, query
        self.ok = 0
        self.errors: list[str] = []
        self.generations: set[str] = set()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = self.client.predict(self.query, api_name="/search")
                assert r["results"], "no results"
                self.generations.add(r["generation"])
                self.ok += 1
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"{type(e).__name__}: {e}")
            time.sleep(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(timeout=60)
