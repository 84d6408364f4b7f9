"""Issue 16 against the real app over real HTTP: raw API calls with only the query, uploads
from another origin, batch messages naming the user's file, a deeply nested JSON line
skipped in an app batch, and login throttling (last: it locks this client out for a while).

One app with a login (RAG_AUTH) serves the seed index for the whole module.
"""
from __future__ import annotations

import http.client
import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from app_harness import start_app

USER, PASSWORD = "reader", "s3cret-pass"


@pytest.fixture(scope="module")
def authed_app(tmp_path_factory, seed_index):
    a = start_app(tmp_path_factory.mktemp("abuse"), seed_index, env={"RAG_AUTH": f"{USER}:{PASSWORD}"})
    yield a
    a.stop()


def login(url: str, password: str = PASSWORD) -> tuple[int, urllib.request.OpenerDirector]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    data = urllib.parse.urlencode({"username": USER, "password": password}).encode()
    try:
        with opener.open(url + "login", data=data, timeout=30) as r:
            return r.status, opener
    except urllib.error.HTTPError as e:
        return e.code, opener


def call(opener, url: str, path: str, payload: dict, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url + path, data=json.dumps(payload).encode(),
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def result(opener, url: str, api: str, event_id: str) -> tuple[str, object]:
    with opener.open(url + f"gradio_api/call/{api}/{event_id}", timeout=120) as r:
        text = r.read().decode("utf-8")
    event = next(l.split(": ", 1)[1] for l in text.splitlines() if l.startswith("event: "))
    data = next(l.split(": ", 1)[1] for l in text.splitlines() if l.startswith("data: "))
    return event, json.loads(data)


def test_raw_search_with_only_the_query(authed_app):
    status, opener = login(authed_app.url)
    assert status == 200
    status, out = call(opener, authed_app.url, "gradio_api/call/search", {"data": ["四川公安开展的五大行动"]})
    assert status == 200, out
    event, data = result(opener, authed_app.url, "search", out["event_id"])
    assert event == "complete" and data[0]["results"], data
    status, out = call(opener, authed_app.url, "gradio_api/call/search", {"data": []})
    assert status == 422 and "query" in out["error"]


def test_upload_from_another_origin_is_refused(authed_app):
    _status, opener = login(authed_app.url)
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\n问题\r\n--{boundary}--\r\n").encode()

    def upload(origin: str) -> int:
        req = urllib.request.Request(authed_app.url + "gradio_api/upload", data=body, headers={
            "content-type": f"multipart/form-data; boundary={boundary}", "origin": origin})
        try:
            with opener.open(req, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    assert upload("http://evil.example") == 403
    assert upload(authed_app.url.rstrip("/")) == 200


def test_batch_messages_name_the_users_file_and_skip_a_nested_line(authed_app, tmp_path):
    from gradio_client import Client, handle_file

    c = Client(authed_app.url, auth=(USER, PASSWORD), verbose=False, analytics_enabled=False)
    bad = tmp_path / "我的问题.csv"
    bad.write_text("id,question\n1,四川\n", encoding="utf-8")          # no query column
    status, _j, _c = c.predict(handle_file(str(bad)), 5, api_name="/batch")
    assert "我的问题.csv" in status and "/tmp" not in status and "gradio" not in status.lower(), status
    nested = tmp_path / "nested.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    nested.write_text(json.dumps({"id": "a", "query": "四川公安开展的五大行动"}, ensure_ascii=False) + "\n"
                      + deep + "\n"
                      + json.dumps({"id": "b", "query": "广东公安"}, ensure_ascii=False) + "\n", encoding="utf-8")
    status, jsonl, _c = c.predict(handle_file(str(nested)), 5, api_name="/batch")
    assert jsonl, status
    assert "nested.jsonl:2" in status and "内部错误" not in status, status
    ids = [json.loads(line)["id"] for line in Path(jsonl).read_text(encoding="utf-8").splitlines()]
    assert ids == ["a", "b"]


def test_repeated_failed_logins_are_slowed_down(authed_app):
    codes = [login(authed_app.url, "wrong")[0] for _ in range(12)]
    assert codes[:5] == [400] * 5                          # the free failures
    assert 429 in codes[5:] and codes[-1] == 429
    assert login(authed_app.url)[0] == 429                 # even the right password must wait
