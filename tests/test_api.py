"""The REST API (/api/v1) through a real HTTP client (httpx) against the real app, started as
a subprocess with a rag.toml of two libraries and a bearer token."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="httpx (dev extra) is needed to test the REST API")

from app_harness import REPO, SEEDS, AppProcess, free_port, writable_copy  # noqa: E402

TOKEN = "test-token-15"
DOC = "云岭山区警务\n\n云岭县公安局局长\n张明\n\n民警骑马翻山越岭巡逻到偏远村寨，上门为老人办理户籍和身份证业务。\n"


class ConfigApp(AppProcess):
    """AppProcess started with --config instead of --corpus/--index."""

    def __init__(self, config: Path, port: int, log: Path, env: dict) -> None:
        self.corpus, self.index, self.port, self.log_path = None, None, port, log
        self.url = f"http://127.0.0.1:{port}/"
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("RAG_AUTH", "RAG_AUTH_FILE", "RAG_DEBUG", "RAG_CORPUS", "RAG_INDEX",
                                 "RAG_API_TOKEN")}
        full_env.update({"PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1", **env})
        self._log = open(log, "w", encoding="utf-8")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--config", str(config),
                                      "--port", str(port)], cwd=REPO, env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        import time
        self.started = time.monotonic()


@pytest.fixture(scope="module")
def api(tmp_path_factory, seed_index):
    root = tmp_path_factory.mktemp("api")
    writable_copy(SEEDS, root / "seeds")
    shutil.copytree(seed_index, root / "idx-seeds", ignore=shutil.ignore_patterns(".lock"))
    (root / "tiny").mkdir()
    (root / "tiny" / "a.txt").write_text(DOC, encoding="utf-8")
    (root / "tiny" / "metadata.csv").write_text("file,journal,year,volume,issue,pages,url,type\n"
                                                "a.txt,山区警务,2023,,5,10-12,,J\n", encoding="utf-8")
    (root / "rag.toml").write_text('[[library]]\nname = "公安期刊"\ncorpus = "seeds"\nindex = "idx-seeds"\n'
                                   '[[library]]\nname = "山区"\ncorpus = "tiny"\nindex = "idx-tiny"\n',
                                   encoding="utf-8")
    app = ConfigApp(root / "rag.toml", free_port(), root / "app.log", {"RAG_API_TOKEN": TOKEN})
    try:
        app.wait_ready()
    except Exception:
        app.stop()
        raise
    with httpx.Client(base_url=app.url + "api/v1", timeout=120) as c:
        c.root = root
        yield c
    app.stop()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_openapi_and_docs(api):
    spec = api.get("/openapi.json").json()
    assert {"/search", "/cite", "/batch", "/libraries", "/libraries/{name}/documents",
            "/libraries/{name}/documents/{file}"} <= set(spec["paths"])
    assert set(spec["paths"]["/search"]) == {"get", "post"}
    page = api.get("/docs")
    assert page.status_code == 200 and "openapi.json" in page.text
    assert "cdn" not in page.text.lower()                  # works offline: assets served locally
    js = api.get("/docs-assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000


def test_search_get_and_post_one_ranking(api):
    r = api.get("/search", params={"q": "骑马巡逻的山区民警", "k": 3})
    assert r.status_code == 200
    d = r.json()
    assert d["query"] == "骑马巡逻的山区民警" and len(d["results"]) == 3
    top = d["results"][0]
    assert top["library"] == "山区" and top["reference"] == "张明. 云岭山区警务[J]. 山区警务, 2023(5): 10-12."
    # every field of `rag query --json` is there
    assert {"rank", "score", "source", "start", "end", "text", "title", "author", "section", "paragraph",
            "matched", "best_sentence", "scores", "id"} <= set(top)
    r2 = api.post("/search", json={"q": "四川公安开展的五大行动", "k": 2, "library": ["公安期刊"]})
    assert r2.status_code == 200
    assert {x["library"] for x in r2.json()["results"]} == {"公安期刊"}
    r3 = api.get("/search", params=[("q", "四川公安"), ("library", "公安期刊"), ("library", "山区")])
    assert r3.status_code == 200 and r3.json()["results"]


@pytest.mark.parametrize("params,status,words", [
    ({"q": "", "k": 3}, 400, "empty"),
    ({"q": "问题", "k": "abc"}, 400, "whole number"),
    ({"q": "问题", "k": 1000}, 400, "between"),
    ({"q": "问题", "library": "没有"}, 404, "no library"),
])
def test_search_errors_are_json(api, params, status, words):
    r = api.get("/search", params=params)
    assert r.status_code == status and r.headers["content-type"].startswith("application/json")
    assert words in r.json()["error"]


def test_errors_never_html(api):
    for r in (api.get("/nowhere"), api.post("/search", content=b"{not json",
                                            headers={"content-type": "application/json"}),
              api.post("/cite", json={"k": 2})):
        assert 400 <= r.status_code < 500 and "error" in r.json(), r.text
        assert "Traceback" not in r.text and "<html" not in r.text.lower()


def test_cite_searches_every_library(api):
    d = api.post("/cite", json={"quote": "民警骑马翻山越岭巡逻到偏远村寨", "k": 2}).json()
    assert d["quote"] and d["matches"][0]["library"] == "山区" and d["matches"][0]["kind"] == "exact"
    assert d["matches"][0]["reference"].startswith("张明. 云岭山区警务[J]")
    r = api.post("/cite", json={"quote": "短"})
    assert r.status_code == 400 and "error" in r.json()


def test_batch_streams_in_order_with_bad_lines_in_place(api):
    body = ('{"id":"a","query":"骑马巡逻"}\nnot json\n{"id":"b","query":""}\n{"id":"z","query":"\\u0001"}\n'
            '{"id":"c","query":"枫桥经验"}\n')
    with api.stream("POST", "/batch", params={"k": 1}, content=body.encode(),
                    headers={"content-type": "application/x-ndjson"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(x) for x in r.iter_lines() if x]
    assert [x.get("id") for x in lines] == ["a", None, None, "z", "c"]
    assert lines[1] == {"line": 2, "error": "malformed JSON (Expecting value)"}
    assert lines[2]["line"] == 3 and "non-empty" in lines[2]["error"]
    assert lines[3] == {"id": "z", "line": 4, "error": "the query is empty"}
    assert lines[0]["results"][0]["library"] and lines[4]["results"][0]["reference"]
    txt = api.post("/batch", content="骑马巡逻\n\n枫桥经验\n".encode(), headers={"content-type": "text/plain"})
    assert [json.loads(x)["id"] for x in txt.text.splitlines()] == ["1", "3"]
    csv = api.post("/batch", content="id,query\nq1,骑马巡逻\n".encode(), headers={"content-type": "text/csv"})
    assert json.loads(csv.text.splitlines()[0])["id"] == "q1"
    up = api.post("/batch", files={"file": ("qs.jsonl", b'{"id":"m","query":"\xe6\x9e\xab\xe6\xa1\xa5"}\n')})
    assert json.loads(up.text.splitlines()[0])["id"] == "m"
    bad = api.post("/batch", content=b"x", headers={"content-type": "image/png"})
    assert bad.status_code == 415 and "error" in bad.json()
    nul = api.post("/batch", content=b"a\x00b\n", headers={"content-type": "text/plain"})
    assert nul.status_code == 400 and "NUL" in nul.json()["error"]


def test_bodies_are_bounded(api):
    from rag.web.api import MAX_BODY_BYTES

    r = api.post("/batch", content=b"q\n" * (MAX_BODY_BYTES // 2 + 1), headers={"content-type": "text/plain"})
    assert r.status_code == 413 and "limit" in r.json()["error"]


def test_libraries_and_documents(api):
    libs = api.get("/libraries").json()["libraries"]
    assert [x["name"] for x in libs] == ["公安期刊", "山区"]
    assert libs[1]["documents"] == 1 and libs[1]["searchable_with"] == ["公安期刊", "山区"]
    docs = api.get("/libraries/山区/documents").json()
    assert docs["documents"][0]["source"] == "a.txt" and docs["documents"][0]["articles"][0]["author"] == "张明"
    assert api.get("/libraries/没有/documents").status_code == 404


def test_writes_need_the_token_and_change_nothing_without(api):
    root = api.root
    doc = "大漠边关的骆驼巡逻队\n\n额济纳旗公安局副局长\n赵勇\n\n民警牵着骆驼在沙丘间巡逻，救助迷路的游客。\n".encode()
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = api.post("/libraries/山区/documents", params={"name": "d.txt"}, content=doc, headers=headers)
        assert r.status_code == 401 and "error" in r.json()
        assert api.delete("/libraries/山区/documents/a.txt", headers=headers).status_code == 401
    assert not (root / "tiny" / "d.txt").exists() and (root / "tiny" / "a.txt").exists()
    gen = api.get("/libraries").json()["libraries"][1]["generation"]
    # add (raw body), found at once; a second add of the same name conflicts
    r = api.post("/libraries/山区/documents", params={"name": "d.txt"}, content=doc, headers=AUTH)
    assert r.status_code == 201 and r.json()["added"] == ["d.txt"] and r.json()["generation"] != gen
    hit = api.get("/search", params={"q": "骆驼巡逻队", "k": 1, "library": "山区"}).json()["results"][0]
    assert hit["source"] == "d.txt"
    assert api.post("/libraries/山区/documents", params={"name": "d.txt"}, content=doc,
                    headers=AUTH).status_code == 409
    # multipart upload; a binary file is refused
    r = api.post("/libraries/山区/documents", files={"file": ("e.md", doc)}, headers=AUTH)
    assert r.status_code == 201 and r.json()["added"] == ["e.md"]
    r = api.post("/libraries/山区/documents", files={"file": ("x.txt", b"\x00\x01\x02" * 100)}, headers=AUTH)
    assert r.status_code == 400 and not (root / "tiny" / "x.txt").exists()
    assert api.post("/libraries/山区/documents", params={"name": "../evil.sh"}, content=b"x",
                    headers=AUTH).status_code == 400
    # delete: gone from the index before the answer
    r = api.delete("/libraries/山区/documents/d.txt", headers=AUTH)
    assert r.status_code == 200 and r.json()["removed"] == ["d.txt"]
    names = [d["source"] for d in api.get("/libraries/山区/documents").json()["documents"]]
    assert names == ["a.txt", "e.md"]
    assert api.delete("/libraries/山区/documents/none.txt", headers=AUTH).status_code == 404


def test_gradio_named_endpoints_serve_every_library(api):
    from gradio_client import Client

    c = Client(str(api.base_url).split("api/v1")[0], verbose=False)
    out = c.predict("骑马巡逻的山区民警", api_name="/search")
    assert out["results"][0]["library"] == "山区" and out["results"][0]["reference"]
    assert set(out["generations"]) == {"公安期刊", "山区"}
    only = c.predict("骑马巡逻的山区民警", 3, "", "", ["公安期刊"], api_name="/search")
    assert {r["library"] for r in only["results"]} == {"公安期刊"}
    d = c.predict("民警骑马翻山越岭巡逻到偏远村寨", api_name="/cite")
    assert d["matches"][0]["library"] == "山区"
