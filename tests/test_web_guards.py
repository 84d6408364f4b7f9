"""Issue 16: login throttling (finding 8), the temp folder bounded by age and size and uploads
only from the app's own origin (finding 3), bounded Gradio sessions (finding 2), defaults for
raw API calls (finding 9). Unit level; tests/test_app_abuse.py checks them over real HTTP."""
from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from rag.web.apidefaults import ApiDefaults, Param, fill
from rag.web.auth import LoginThrottle, LoginThrottleMiddleware
from rag.web.housekeeping import OriginGuard, TempFolder, same_origin


# ------------------------------------------------------------------ login throttling

class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_failures_beyond_the_free_ones_must_wait_longer_and_longer():
    clock = Clock()
    th = LoginThrottle(free=5, max_delay_s=300, clock=clock)
    for _ in range(5):
        assert th.wait_s("1.2.3.4") == 0
        th.failed("1.2.3.4")
    assert th.wait_s("1.2.3.4") == pytest.approx(1.0)
    th.failed("1.2.3.4")
    assert th.wait_s("1.2.3.4") == pytest.approx(2.0)
    assert th.wait_s("5.6.7.8") == 0                      # per client
    for _ in range(30):
        th.failed("1.2.3.4")
    assert th.wait_s("1.2.3.4") == pytest.approx(300.0)   # capped
    clock.t += 301
    assert th.wait_s("1.2.3.4") == 0
    th.succeeded("1.2.3.4")
    th.failed("1.2.3.4")
    assert th.wait_s("1.2.3.4") == 0                      # a success forgets the client


def test_remembered_clients_are_bounded():
    th = LoginThrottle(max_clients=10)
    for i in range(100):
        th.failed(f"10.0.0.{i}")
    assert len(th._failures) == 10


def _asgi_call(app, method: str, path: str, headers: dict[str, str] | None = None,
               body: bytes = b"", client=("9.9.9.9", 1234)) -> tuple[int, bytes]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "method": method, "path": path, "client": client,
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def _app(status: int, seen: list | None = None):
    async def app(scope, receive, send):
        if seen is not None:
            seen.append((scope, (await receive())["body"]))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
    return app


def test_login_middleware_refuses_without_asking_the_password_check():
    seen: list = []
    mw = LoginThrottleMiddleware(_app(400, seen), LoginThrottle(free=3))
    codes = [_asgi_call(mw, "POST", "/login")[0] for _ in range(6)]
    assert codes == [400, 400, 400, 429, 429, 429]        # 3 free failures, then wait 1 s
    assert len(seen) == 3                                  # the refused ones never reached the app
    status, body = _asgi_call(mw, "POST", "/login")
    assert status == 429 and "wait" in json.loads(body)["detail"]
    assert _asgi_call(mw, "GET", "/login")[0] == 400       # only POST /login is throttled


# ------------------------------------------------------------------ temp folder

def _entry(root: Path, rel: str, size: int, age_s: float) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x" * size)
    t = time.time() - age_s
    os.utime(p, (t, t))
    return p


def test_sweep_removes_expired_entries_then_oldest_over_the_limit(tmp_path):
    old_upload = _entry(tmp_path, "abc123/questions.txt", 1000, age_s=7200)
    old_batch = _entry(tmp_path, "batch/aaa/q-results.jsonl", 1000, age_s=4000)
    mid = _entry(tmp_path, "batch/bbb/q-results.jsonl", 3000, age_s=600)
    new = _entry(tmp_path, "batch/ccc/q-results.jsonl", 3000, age_s=60)
    fresh = _entry(tmp_path, "def456/doc.txt", 3000, age_s=1)            # being written
    tf = TempFolder(tmp_path, ttl_s=3600, max_bytes=6500)
    r = tf.sweep()
    assert not old_upload.exists() and not old_batch.exists()          # expired
    assert not mid.exists()                                            # oldest over the limit
    assert new.exists() and fresh.exists()
    assert r.removed == 3 and r.total == 6000 and tf.total <= tf.max_bytes
    assert not (tmp_path / "abc123").exists() and not (tmp_path / "batch" / "aaa").exists()
    assert not tf.full()


def test_full_when_recent_entries_alone_exceed_the_limit(tmp_path):
    _entry(tmp_path, "batch/x/r.jsonl", 5000, age_s=1)
    tf = TempFolder(tmp_path, ttl_s=3600, max_bytes=1000)
    assert tf.full()                                        # entries in use are not removed


# ------------------------------------------------------------------ same origin

def test_same_origin_rule():
    assert same_origin("http://127.0.0.1:7860", "127.0.0.1:7860")
    assert same_origin("https://rag.example.org", "internal:7860", "rag.example.org")
    assert not same_origin("http://evil.example", "127.0.0.1:7860")
    assert not same_origin("null", "127.0.0.1:7860")
    assert not same_origin("http://127.0.0.1:9999", "127.0.0.1:7860")


def test_origin_guard_refuses_cross_site_writes_and_uploads_when_full(tmp_path):
    seen: list = []
    guard = OriginGuard(_app(200, seen))
    evil = {"origin": "http://evil.example", "host": "127.0.0.1:7860"}
    assert _asgi_call(guard, "POST", "/gradio_api/upload", evil)[0] == 403
    assert _asgi_call(guard, "POST", "/gradio_api/call/library_remove", evil)[0] == 403
    assert _asgi_call(guard, "GET", "/gradio_api/info", evil)[0] == 200          # reads are fine
    own = {"origin": "http://127.0.0.1:7860", "host": "127.0.0.1:7860"}
    assert _asgi_call(guard, "POST", "/gradio_api/upload", own)[0] == 200
    assert _asgi_call(guard, "POST", "/gradio_api/upload", {"host": "x"})[0] == 200  # scripts: no Origin
    _entry(tmp_path, "batch/x/r.jsonl", 5000, age_s=1)
    full = OriginGuard(_app(200), TempFolder(tmp_path, ttl_s=3600, max_bytes=1000))
    full.temp.sweep()
    status, body = _asgi_call(full, "POST", "/gradio_api/upload", own)
    assert status == 507 and "full" in json.loads(body)["error"]


# ------------------------------------------------------------------ API defaults

PARAMS = {"search": [Param("query", True), Param("k", False, 5), Param("source", False, ""),
                     Param("article", False, "")]}


def test_fill_defaults_and_name_missing_required():
    assert fill(["q"], PARAMS["search"]) == ["q", 5, "", ""]
    assert fill(["q", 9], PARAMS["search"]) == ["q", 9, "", ""]
    with pytest.raises(ValueError, match="query"):
        fill([], PARAMS["search"])


def test_api_defaults_middleware_pads_raw_calls():
    seen: list = []
    mw = ApiDefaults(_app(200, seen), params=PARAMS)
    body = json.dumps({"data": ["四川"]}).encode()
    assert _asgi_call(mw, "POST", "/gradio_api/call/search", {"content-type": "application/json"}, body)[0] == 200
    scope, got = seen[-1]
    assert json.loads(got)["data"] == ["四川", 5, "", ""]
    assert dict(scope["headers"])[b"content-length"] == str(len(got)).encode()
    status, out = _asgi_call(mw, "POST", "/gradio_api/call/search", {}, json.dumps({"data": []}).encode())
    assert status == 422 and "query" in json.loads(out)["error"]
    _asgi_call(mw, "POST", "/gradio_api/call/other", {}, body)          # other endpoints untouched
    assert seen[-1][1] == body
