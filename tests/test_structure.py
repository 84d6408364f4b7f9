"""rag.chunks.structure: page-break repair, headings, bylines, editor's marks, article bounds."""
from __future__ import annotations

from pathlib import Path

import pytest

from rag.chunks.chunker import chunk_document
from rag.chunks.cleaning import clean
from rag.documents import Document
from rag.chunks.structure import Article, Paragraph, parse

from conftest import read_raw

BODY = "公安机关坚持以人民为中心，扎实推进平安建设，持续提升人民群众安全感满意度。"


def ptext(text: str, p: Paragraph) -> str:
    return clean(text[p.start:p.end], p.joins, p.start)


def body_texts(text: str, arts: list[Article]) -> list[str]:
    return [ptext(text, p) for a in arts for p in a.paragraphs if p.kind == "body"]


def doc_of(text: str, source: str = "t.txt") -> Document:
    return Document(source, Path(source), "utf-8", text, "")


@pytest.fixture(scope="module")
def seed_texts(seeds_dir) -> dict[str, str]:
    return {p.name: read_raw(p) for p in sorted(seeds_dir.glob("*.txt"))}


# page-break joins ---------------------------------------------------------------------
def test_page_break_inside_word_is_joined():
    text = f"标题文字\n\n{BODY}必须坚持全\n\n面从严管党治警，锻造过硬公安铁军。\n\n下一段。\n"
    texts = body_texts(text, parse(text))
    assert f"{BODY}必须坚持全面从严管党治警，锻造过硬公安铁军。" in texts
    assert "下一段。" in texts          # the join stops at the sentence end
    [p] = [p for a in parse(text) for p in a.paragraphs if p.joins]
    assert p.joins == (text.index("全\n") + 1,)


def test_page_break_inside_run_in_heading_quote_is_joined():
    text = ("标题文字\n\n"
            "一、聚焦“三个绝对”，忠诚拥护“两\n\n个确立”，坚决做到“两个维护”。按照会议部署。\n\n"
            "二、聚焦“四大风险”，严密落实防范化解措施。坚决守护安全稳定。\n")
    texts = body_texts(text, parse(text))
    assert "一、聚焦“三个绝对”，忠诚拥护“两个确立”，坚决做到“两个维护”。按照会议部署。" in texts


def test_page_break_after_sentence_end_is_not_joined():
    text = f"标题文字\n\n{BODY}\n\n{BODY}\n"
    arts = parse(text)
    assert body_texts(text, arts) == [BODY, BODY]
    assert not any(p.joins for a in arts for p in a.paragraphs)


def test_page_breaks_repaired_in_seeds(seed_texts):
    t000 = seed_texts["000_9fefdf128692389e.txt"]
    t003 = seed_texts["003_8750069abcf0ab7e.txt"]
    # the raw files really are cut there (guards against the seeds changing under us)
    assert "坚持全\n\n面从严管党治警" in t000 and "“两\n\n个确立”" in t003
    for text, phrase in ((t000, "坚持全面从严管党治警"), (t003, "“两个确立”，坚决做到")):
        chunks = chunk_document(doc_of(text))
        hits = [c for c in chunks if phrase in c.text]
        assert hits, phrase
        # the glued chunk spans the gap and records it as a join
        assert all(c.joins for c in hits)
        assert all(c.text == clean(text[c.start:c.end], c.joins, c.start) for c in hits)


def test_cut_heading_joined_when_headings_run_in(seed_texts):
    # 003: "二、聚焦“四大风险”，严密落实防范" / blank / "化解措施，..." has balanced quotes;
    # it is joined because this article's headings run into their paragraphs.
    text = seed_texts["003_8750069abcf0ab7e.txt"]
    assert "严密落实防范\n\n化解措施" in text
    assert any("严密落实防范化解措施，坚决守护" in t for t in body_texts(text, parse(text)))


# headings -----------------------------------------------------------------------------
STANDALONE = f"""深化改革 强化担当

湖南省公安厅厅长
张三丰

开篇第一段。

一、总体要求

{BODY}

（一）政治建警

{BODY[:-1]}

1.强化理论武装

（1）深化学习

第一项内容。

（2）学用结合

第二项内容。

2.加强作风建设

第三项内容。

二、重点任务

第四项内容。
"""


def test_standalone_heading_not_joined_to_following_paragraph():
    arts = parse(STANDALONE)
    paras = [p for a in arts for p in a.paragraphs if p.kind == "body"]
    texts = [ptext(STANDALONE, p) for p in paras]
    assert "一、总体要求" in texts and BODY in texts
    head = paras[texts.index("一、总体要求")]
    assert head.level == 1 and head.heading == "一、总体要求" and head.joins == ()
    # a body paragraph not ending in punctuation followed by a heading is not joined either
    assert BODY[:-1] in texts


def test_standalone_heading_not_joined_in_seed(seed_texts):
    text = seed_texts["000_9fefdf128692389e.txt"]
    heading = "一、全面深化规律性认识，树立和践行正确政绩观"
    assert heading + "\n\n" in text
    paras = [p for a in parse(text) for p in a.paragraphs]
    [h] = [p for p in paras if ptext(text, p) == heading]
    assert h.level == 1 and h.end == text.index(heading) + len(heading)
    nxt = paras[paras.index(h) + 1]
    assert nxt.section == (heading,) and nxt.level == 0


def test_cut_heading_joined_even_when_standalone():
    # an unbalanced quote shows the heading line itself was cut by the page break
    text = f"标题文字\n\n一、紧抓“关键\n\n少数”，发挥示范引领作用\n\n{BODY}\n"
    texts = body_texts(text, parse(text))
    assert "一、紧抓“关键少数”，发挥示范引领作用" in texts


def test_heading_levels_nest():
    arts = parse(STANDALONE)
    by_text = {ptext(STANDALONE, p): p for a in arts for p in a.paragraphs}
    assert by_text["开篇第一段。"].section == ()
    assert by_text[BODY].section == ("一、总体要求",)
    assert by_text["第一项内容。"].section == ("一、总体要求", "（一）政治建警", "1.强化理论武装", "（1）深化学习")
    # a sibling replaces its peer, keeps its parents
    assert by_text["第二项内容。"].section == ("一、总体要求", "（一）政治建警", "1.强化理论武装", "（2）学用结合")
    # a higher level closes the deeper ones
    assert by_text["第三项内容。"].section == ("一、总体要求", "（一）政治建警", "2.加强作风建设")
    assert by_text["第四项内容。"].section == ("二、重点任务",)
    levels = {t: p.level for t, p in by_text.items() if p.level}
    assert levels == {"一、总体要求": 1, "（一）政治建警": 2, "1.强化理论武装": 3, "（1）深化学习": 4,
                      "（2）学用结合": 4, "2.加强作风建设": 3, "二、重点任务": 1}


def test_run_in_heading_is_first_sentence():
    text = "标题文字\n\n一、聚焦“三个绝对”，忠诚拥护“两个确立”。按照会议部署，深入学习。\n\n正文。\n"
    paras = [p for a in parse(text) for p in a.paragraphs if p.level]
    assert [p.heading for p in paras] == ["一、聚焦“三个绝对”，忠诚拥护“两个确立”"]


def test_decimal_numbers_are_not_headings():
    text = "标题文字\n\n3.5亿元资金已经到位。\n\n正文。\n"
    assert not any(p.level for a in parse(text) for p in a.paragraphs)


# bylines ------------------------------------------------------------------------------
def test_byline_post_line_and_name_line():
    text = f"""序言标题

{BODY}

——编者

忠诚履职担当 争创全国一流

湖南省副省长、公安厅厅长
王一鸥

{BODY}
"""
    arts = parse(text)
    assert [(a.title, a.author, a.affiliation) for a in arts] == [
        ("序言标题", "编者", ""),
        ("忠诚履职担当 争创全国一流", "王一鸥", "湖南省副省长、公安厅厅长"),
    ]
    assert arts[1].paragraphs[0].kind == "header"
    assert ptext(text, arts[1].paragraphs[0]) == "忠诚履职担当 争创全国一流\n湖南省副省长、公安厅厅长 王一鸥"


def test_byline_title_post_name_on_one_line():
    text = f"深耕善治 以治促稳 创造安全稳定的政治社会环境 四川省副省长、公安厅厅长 黄瑞雪\n\n{BODY}\n"
    [a] = parse(text)
    assert (a.title, a.author, a.affiliation) == (
        "深耕善治 以治促稳 创造安全稳定的政治社会环境", "黄瑞雪", "四川省副省长、公安厅厅长")


def test_byline_title_lines_in_same_block_with_bold():
    text = ("**聚焦主题主线，忠诚担当作为，\n以更高水平平安广东喜迎党的二十大**\n"
            f"广东省副省长、公安厅党委书记、厅长\n王志忠\n\n{BODY}\n")
    [a] = parse(text)
    assert (a.title, a.author, a.affiliation) == (
        "聚焦主题主线，忠诚担当作为，以更高水平平安广东喜迎党的二十大", "王志忠",
        "广东省副省长、公安厅党委书记、厅长")


def test_sentence_is_not_a_byline():
    # ends in punctuation, so it is prose that happens to mention a post
    text = f"标题文字\n\n会议由公安厅厅长主持。\n\n{BODY}\n"
    [a] = parse(text)
    assert a.author == "" and a.affiliation == ""


# editor's marks -----------------------------------------------------------------------
def test_editor_note_and_trailer():
    text = f"""序言标题

——副标题说明

{BODY}

——编者

某某文章标题

某省公安厅厅长
李四

{BODY}没有句号的段落

责任编辑 黄新春
"""
    arts = parse(text)
    assert [a.author for a in arts] == ["编者", "李四"]
    pre, art = arts
    assert [p.kind for p in pre.paragraphs] == ["header", "body", "note"]
    assert ptext(text, pre.paragraphs[0]) == "序言标题\n——副标题说明"
    # the trailer is its own note paragraph: never glued to a cut-looking paragraph
    last = art.paragraphs[-1]
    assert last.kind == "note" and ptext(text, last) == "责任编辑 黄新春"
    assert ptext(text, art.paragraphs[-2]) == BODY + "没有句号的段落"
    assert art.end == text.index("黄新春") + 3


def test_seed_articles(seed_texts):
    got = {name: [(a.title, a.author, a.affiliation) for a in parse(t)]
           for name, t in seed_texts.items()}
    assert got["000_9fefdf128692389e.txt"] == [
        ("坚持以人民为中心 更好统筹发展与安全 为实现“十五五”良好开局贡献公安力量", "编者", ""),
        ("忠诚履职担当 争创全国一流 为谱写中国式现代化湖南篇章 提供坚实安全保障", "王一鸥",
         "湖南省副省长、公安厅厅长"),
        ("深耕善治 以治促稳 为“十五五”良好开局 创造安全稳定的政治社会环境", "黄瑞雪",
         "四川省副省长、公安厅厅长"),
        ("深入学习贯彻全国公安厅局长会议精神 奋力为“十五五”良好开局贡献贵州公安力量", "王冬斌",
         "贵州省公安厅厅长"),
    ]
    assert got["003_8750069abcf0ab7e.txt"] == [
        ("尽职履责护稳定 喜迎党的二十大", "编者", ""),
        ("聚焦主题主线，忠诚担当作为，以更高水平平安广东喜迎党的二十大", "王志忠",
         "广东省副省长、公安厅党委书记、厅长"),
        ("聚力防范重大风险，全面深化平安建设，努力为党的二十大营造安全稳定的政治社会环境", "李宏亚",
         "青海省副省长、公安厅党委书记、厅长"),
    ]


# article bounds -----------------------------------------------------------------------
def _check_bounds(text: str) -> None:
    arts = parse(text)
    assert arts
    for a, b in zip(arts, arts[1:]):
        assert a.end <= b.start
        assert not text[a.end:b.start].strip()         # only blank space between articles
    assert not text[:arts[0].start].strip() and not text[arts[-1].end:].strip()
    for a in arts:
        prev_end = a.start
        for p in a.paragraphs:
            assert a.start <= p.start < p.end <= a.end
            assert p.start >= prev_end
            prev_end = p.end
    chunks = chunk_document(doc_of(text))
    for c in chunks:
        art = arts[c.article]
        assert art.start <= c.start and c.end <= art.end, (c.article, c.start, c.end)
        assert c.title == art.title and c.author == art.author


def test_no_chunk_crosses_an_article_in_seeds(seed_texts):
    for text in seed_texts.values():
        _check_bounds(text)


def test_no_chunk_crosses_an_article_synthetic():
    # short articles that would gladly merge with each other if bounds were ignored
    text = "".join(f"文章标题{i}\n\n某省公安厅厅长\n作者{'甲乙丙'[i]}\n\n短段。\n\n另一短段{'。' if i else ''}\n\n"
                   for i in range(3))
    _check_bounds(text)
    assert [a.author for a in parse(text)] == ["作者甲", "作者乙", "作者丙"]
