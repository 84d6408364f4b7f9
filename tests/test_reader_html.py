"""Saved web pages made from a seed: GBK with and without a declared charset, navigation,
sidebar, share bars, footer and scripts around the article; `<p class="meta">` bylines."""
from __future__ import annotations

import pytest

pytest.importorskip("lxml")

import docgen  # noqa: E402
from conftest import SEEDS  # noqa: E402
from rag.chunks import chunk_document  # noqa: E402
from rag.chunks.cleaning import clean  # noqa: E402
from rag.documents import read_document  # noqa: E402

SEED = SEEDS / "000_9fefdf128692389e.txt"


@pytest.fixture(scope="module", params=[True, False], ids=["gbk-declared", "gbk-undeclared"])
def page(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("html")
    text = SEED.read_text(encoding="utf-8")
    path = docgen.make_html(text, folder / "seed.html", encoding="gbk", declare=request.param)
    doc = read_document(folder, path)
    assert doc is not None
    return text, doc


def test_main_text_round_trips_without_boilerplate(page, record_property):
    seed, doc = page
    share = docgen.in_order_share(seed, doc.text)
    record_property("share_in_order", share)
    print(f"share of seed characters recovered in order: {share:.4f}")
    assert share >= 0.999
    for boiler in ("热点新闻标题", "分享到", "版权所有", "栏目3", "统计代码", "footer script", "搜索 登录"):
        assert boiler not in doc.text


def test_headings_and_bylines_survive(page):
    _seed, doc = page
    heads = {doc.text[h.start:h.end]: h.level for h in doc.headings}
    assert heads["一、全面深化规律性认识，树立和践行正确政绩观"] == 2
    assert any(level == 1 for level in heads.values())
    chunks = chunk_document(doc)
    assert {"王一鸥", "黄瑞雪", "王冬斌", "编者"} <= {c.author for c in chunks}
    assert "湖南省副省长、公安厅厅长" in {c.affiliation for c in chunks}
    assert any(c.section == ["一、全面深化规律性认识，树立和践行正确政绩观"] for c in chunks)


def test_every_chunk_is_its_span_and_names_its_block(page):
    _seed, doc = page
    for c in chunk_document(doc):
        assert clean(doc.text[c.start:c.end], c.joins, c.start) == c.text
        assert c.block.split()[0] in ("p", "p.meta", "h1", "h2", "h3")
