"""End to end: the real app (python app.py) in a subprocess, driven through gradio_client.

One app process serves the whole module (module-scoped fixture); the tests that change the
corpus (library add/remove, a CLI build under the running app) come last.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app_harness import REPO, SEEDS, XSS_DOC, AppProcess, Hammer, free_port, read_raw

SICHUAN = "000_9fefdf128692389e.txt"            # 黄瑞雪's article on the “五大行动”
GUANGDONG = "003_8750069abcf0ab7e.txt"
QUESTION = "四川公安开展的“五大行动”包括哪些内容？"
# one whole sentence of 王志忠's article, occurring once in the corpus
QUOTE = ("树牢“群众过节、公安过关”工作理念，以高速公路、城市标志性建筑物、旅游景区、大型活动等为重点，"
         "扎实做好保安全、保畅通、战疫情各项工作，努力让人民群众过一个平安祥和的节日。")
# the citation record's fields plus how the passage ranked
RESULT_FIELDS = {"rank", "score", "source", "start", "end", "text", "title", "author", "section",
                 "paragraph", "affiliation", "article", "page", "page_end", "boxes", "block",
                 "id", "matched", "best_sentence", "scores",
                 "library", "reference"}      # which library, and its GB/T 7714 reference (issue 15)
HAS_CITE = importlib.util.find_spec("rag.cite") is not None
needs_cite = pytest.mark.skipif(not HAS_CITE, reason="rag/cite.py (citation lookup) is not in this tree yet")


@pytest.fixture(scope="module")
def client(app, tmp_path_factory):
    from gradio_client import Client

    return Client(app.url, verbose=False, analytics_enabled=False,
                  download_files=str(tmp_path_factory.mktemp("downloads")))


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


# ------------------------------------------------------------------------------ start

def test_app_builds_index_and_binds_localhost(app):
    out = app.output()
    assert re.search(r"built gen-\d+|index up to date", out), out
    assert "索引就绪 index ready" in out
    assert "ready: http://127.0.0.1:" in out
    assert (app.index / "CURRENT").exists()


def test_app_builds_a_missing_index_and_requires_login(tmp_path):
    """A second, small app: no index yet (built on start), login via RAG_AUTH_FILE."""
    from gradio_client import Client

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "边关.txt").write_text("大漠边关的骆驼巡逻队\n\n赵勇\n\n额济纳旗地处沙漠边缘，民警牵着骆驼"
                                     "在沙丘间巡逻，救助在沙漠中迷路的游客。\n", encoding="utf-8")
    users = tmp_path / "users.txt"
    users.write_text("# who may log in\ntester:pa:ss\n", encoding="utf-8")
    a = AppProcess(corpus, tmp_path / "index", free_port(), tmp_path / "app.log",
                   env={"RAG_AUTH_FILE": str(users)})
    try:
        a.wait_ready()
        out = a.output()
        assert "built gen-000001: 1 files" in out and "(login required)" in out, out
        with pytest.raises(Exception, match="(?i)login|credentials"):
            Client(a.url, verbose=False, analytics_enabled=False).predict("骆驼", api_name="/search")
        with pytest.raises(Exception, match="(?i)login"):
            Client(a.url, verbose=False, analytics_enabled=False, auth=("tester", "wrong"))
        c = Client(a.url, verbose=False, analytics_enabled=False, auth=("tester", "pa:ss"))
        assert c.predict("骆驼巡逻", api_name="/search")["results"][0]["source"] == "边关.txt"
    finally:
        a.stop()


def test_api_lists_named_endpoints(client):
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/search", "/cite", "/batch"} <= set(named)
    params = named["/search"]["parameters"]
    assert params[0]["parameter_name"] == "query" and not params[0]["parameter_has_default"]
    assert all(p["parameter_has_default"] for p in params[1:])


# ------------------------------------------------------------------------------ search

def test_search_returns_cited_passages(client):
    out = client.predict(QUESTION, api_name="/search")
    results = out["results"]
    assert 1 <= len(results) <= 5 and out["query"] == QUESTION and out["generation"].startswith("gen-")
    top = results[0]
    assert set(top) == RESULT_FIELDS
    assert top["source"] == SICHUAN and top["author"] == "黄瑞雪", top
    assert "五大行动" in top["matched"]
    for r in results:
        raw = read_raw(SEEDS / r["source"])
        # the citation points at the original: the best sentence is exactly raw[start:end]
        bs = r["best_sentence"]
        assert r["start"] <= bs["start"] < bs["end"] <= r["end"]
        assert _squash(raw[bs["start"]:bs["end"]]) == _squash(bs["text"])
        assert _squash(bs["text"]) in _squash(r["text"])
        assert [x["rank"] for x in results] == list(range(1, len(results) + 1))


def test_search_filters_and_k(client):
    out = client.predict("电信网络诈骗", 3, GUANGDONG, "", api_name="/search")
    assert 1 <= len(out["results"]) <= 3
    assert {r["source"] for r in out["results"]} == {GUANGDONG}
    out = client.predict("电信网络诈骗", 10, "", "李宏亚", api_name="/search")
    assert out["results"] and {r["author"] for r in out["results"]} == {"李宏亚"}


@pytest.mark.parametrize("query,k,needle", [("", 5, "请输入"), ("   ", 5, "请输入"), ("枫桥经验", 0, "1 到 100"),
                                            ("问" * 5000, 5, "过长")])
def test_search_bad_input_is_a_clear_error(client, query, k, needle):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=needle):
        client.predict(query, k, api_name="/search")


def test_rendered_cards_escape_the_query(client):
    html = client.predict("<script>alert(1)</script>", 5, "", "", api_name="/search_html")
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_rendered_cards_escape_documents(client):
    html = client.predict("网页是否转义文档中的标记", 5, "", "", api_name="/search_html")
    assert f'data-source="{XSS_DOC}"' in html          # the markup document is a result
    assert "<script" not in html and "<img" not in html
    assert "&lt;img src=x onerror=" in html
    assert "${" not in html and "{{" not in html and "&#36;&#123;7*7&#125;" in html
    # cards carry the citation line, the copy button and the context of the original
    assert 'class="rag-cite-text"' in html and 'class="rag-copy"' in html and "<details" in html


def test_rendered_empty_query_is_a_message(client):
    html = client.predict("  ", 5, "", "", api_name="/search_html")
    assert "rag-msg" in html and "请输入要检索的问题" in html


# -------------------------------------------------------------------------------- cite

@needs_cite
def test_cite_locates_an_exact_sentence(client):
    raw = read_raw(SEEDS / GUANGDONG)
    assert raw.count(QUOTE) == 1
    start = raw.index(QUOTE)
    out = client.predict(QUOTE, api_name="/cite")
    m = out["matches"][0]
    assert (m["source"], m["start"], m["end"]) == (GUANGDONG, start, start + len(QUOTE))
    assert m["kind"] == "exact" and m["diff"] == [] and m["text"] == QUOTE
    assert m["author"] == "王志忠"
    html = client.predict(QUOTE, 3, api_name="/cite_html")
    assert f"字符 {start}–{start + len(QUOTE)}" in html and "逐字一致" in html


@needs_cite
def test_cite_shows_the_diff_of_a_misquote(client):
    misquote = QUOTE.replace("平安祥和", "平安快乐")
    out = client.predict(misquote, api_name="/cite")
    m = out["matches"][0]
    assert m["source"] == GUANGDONG and m["kind"] == "fuzzy"
    assert any(d["op"] != "equal" and "快乐" in d["quote"] and "祥和" in d["original"] for d in m["diff"])
    html = client.predict(misquote, 3, api_name="/cite_html")
    assert "<del" in html and "<ins" in html


@needs_cite
def test_cite_not_found_lists_related_passages_as_such(client):
    quote = "火星基地的量子烹饪课程每周二下午在月球背面举行"
    out = client.predict(quote, api_name="/cite")
    assert out["matches"] == []
    assert all(r.get("label") for r in out["related"])
    html = client.predict(quote, 3, api_name="/cite_html")
    assert "未在文库中找到" in html and "not found in the corpus" in html


def test_cite_without_module_says_unavailable(client):
    if HAS_CITE:
        pytest.skip("rag.cite is present: citation lookup is available")
    html = client.predict(QUOTE, 3, api_name="/cite_html")
    assert "citation lookup unavailable" in html


# ------------------------------------------------------------------------------- batch

def test_batch_jsonl_gives_jsonl_and_csv(client, tmp_path):
    from gradio_client import handle_file

    src = tmp_path / "questions.jsonl"
    src.write_text("\n".join([
        json.dumps({"id": "q1", "query": QUESTION, "note": "kept"}, ensure_ascii=False),
        json.dumps({"id": "q2", "query": "如何打击治理电信网络诈骗？"}, ensure_ascii=False),
        "{not json",
        json.dumps({"id": "q3", "query": "枫桥经验"}, ensure_ascii=False),
    ]) + "\n", encoding="utf-8")
    html, jsonl, csvp = client.predict(handle_file(str(src)), 3, api_name="/batch")
    assert "3/3" in html and "警告" in html and ":3:" in html          # the bad line is reported
    assert Path(jsonl).name == "questions-results.jsonl" and Path(csvp).name == "questions-results.csv"
    records = [json.loads(x) for x in Path(jsonl).read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == ["q1", "q2", "q3"]
    assert records[0]["note"] == "kept"
    assert all(1 <= len(r["results"]) <= 3 for r in records)
    assert records[0]["results"][0]["source"] == SICHUAN
    with open(csvp, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    from rag.batchio import CSV_FIELDS

    assert list(rows[0]) == CSV_FIELDS
    assert len(rows) == sum(len(r["results"]) for r in records)
    assert rows[0]["id"] == "q1" and rows[0]["source"] == SICHUAN


def test_batch_txt_and_refused_type(client, tmp_path):
    from gradio_client import handle_file

    src = tmp_path / "qs.txt"
    src.write_text("枫桥经验\n\n队伍建设\n", encoding="utf-8")
    html, jsonl, _csv = client.predict(handle_file(str(src)), 2, api_name="/batch")
    assert "2/2" in html and len(Path(jsonl).read_text(encoding="utf-8").splitlines()) == 2
    from gradio_client.exceptions import AppError

    bad = tmp_path / "qs.pdf"
    bad.write_bytes(b"%PDF-1.4 not a question file")
    with pytest.raises(AppError, match="Invalid file type"):           # refused by the server
        client.predict(handle_file(str(bad)), 2, api_name="/batch")


# ---------------------------------------------------------------- corpus changes (last)

def _wait_for(pred, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.3)
    return pred()


def test_library_add_then_remove_reindexes(client, app, tmp_path):
    from gradio_client import handle_file

    doc = tmp_path / "牦牛合作社.txt"
    doc.write_text("高原牧区调研\n\n调研组\n\n青藏高原的牦牛养殖合作社推行“统一防疫、统一收购”，"
                   "牧民年收入明显增加，合作社还建立了冷链仓储。\n", encoding="utf-8")
    log = client.predict([handle_file(str(doc))], api_name="/library_add")[0]
    assert "已添加 牦牛合作社.txt" in log and re.search(r"built gen-\d+", log), log
    assert (app.corpus / "牦牛合作社.txt").read_bytes() == doc.read_bytes()
    top = client.predict("牦牛养殖合作社", 1, api_name="/search")["results"][0]
    assert top["source"] == "牦牛合作社.txt"
    # the same name again is refused, not overwritten
    log = client.predict([handle_file(str(doc))], api_name="/library_add")[0]
    assert "已有同名文件" in log

    log = client.predict(["牦牛合作社.txt"], False, api_name="/library_remove")[0]
    assert "确认移除" in log and (app.corpus / "牦牛合作社.txt").exists()
    log = client.predict(["牦牛合作社.txt"], True, api_name="/library_remove")[0]
    assert "已移除 牦牛合作社.txt" in log, log
    assert not (app.corpus / "牦牛合作社.txt").exists()
    assert list((app.corpus / ".trash").rglob("牦牛合作社.txt"))        # recoverable
    res = client.predict("牦牛养殖合作社", 5, api_name="/search")["results"]
    assert all(r["source"] != "牦牛合作社.txt" for r in res)


def test_searches_keep_working_while_the_cli_rebuilds(client, app):
    before = client.predict(QUESTION, api_name="/search")["generation"]
    (app.corpus / "新增文件.md").write_text(
        "# 海岛渔业\n\n渔政执法\n\n东海渔场的伏季休渔制度保护了带鱼资源，渔政部门开展海上巡查。\n", encoding="utf-8")
    with Hammer(client, QUESTION) as h:
        proc = subprocess.run([sys.executable, "-m", "rag", "build", "--corpus", str(app.corpus),
                               "--index", str(app.index)], cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        found = _wait_for(lambda: client.predict("伏季休渔 带鱼", 1, api_name="/search")["results"][0]["source"]
                          == "新增文件.md")
        time.sleep(0.5)
    assert found, "the app did not pick up the generation built by the CLI"
    assert h.errors == [] and h.ok > 0, h.errors[:3]
    after = client.predict(QUESTION, api_name="/search")["generation"]
    assert after != before
