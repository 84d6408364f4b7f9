"""Citation lookup (rag.cite): variants, spans, several occurrences, negatives, errors, CLI."""
from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from rag import cite
from rag.chunks.chunker import chunk_document
from rag.cite import Citer, CiteResult, Match, clean_quote, max_edits, render_diff
from rag.documents import load_corpus
from rag.errors import RagError
from rag.index import load
from rag.index.ngrams import _last_row, _last_row_dp, align, normalize, normalize_map
from rag.chunks import CITATION_FIELDS
from rag.index.store import Store, create, file_row

REPO = Path(__file__).resolve().parents[1]
DEV = Path("/work/shared/eval/seed_cite_dev.jsonl")
NEGATIVES = [l.strip() for l in (REPO / "tests/data/cite_negatives.txt").read_text(encoding="utf-8").splitlines()
             if l.strip() and not l.startswith("#")]
sys.path.insert(0, str(REPO / "bench"))
import bench_cite  # noqa: E402


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def index(seed_index):
    return load(seed_index)


@pytest.fixture(scope="module")
def citer(index):
    return Citer(index).warm()


def store_index(tmp_path: Path, files: dict[str, str]) -> SimpleNamespace:
    """A chunk store (no embeddings) of a small corpus: enough for matching."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in files.items():
        (corpus / name).write_text(text, encoding="utf-8", newline="")
    docs = load_corpus(corpus)
    chunks = [c for d in docs for c in chunk_document(d)]
    path = tmp_path / "store.sqlite"
    create(path, (file_row(d) for d in docs), chunks)
    return SimpleNamespace(store=Store(path), cache={})


def raw_of(index, source: str) -> str:
    return index.store.file_text(source)


def check_match(index, quote: str, m: Match) -> None:
    """Every match: a tight span whose normalized text aligns with the quote at the
    reported similarity, within the edits allowed, and consistent with its kind."""
    raw = raw_of(index, m.source)
    assert 0 <= m.start < m.end <= len(raw)
    span = raw[m.start:m.end]
    assert not span[0].isspace() and not span[-1].isspace()
    qn, sn = normalize(clean_quote(quote)), normalize(span)
    edits = Levenshtein.distance(qn, sn)
    assert edits <= max_edits(len(qn))
    assert m.similarity == pytest.approx(Levenshtein.normalized_similarity(qn, sn), abs=1e-4)
    assert normalize(m.text) == sn
    if m.kind == "exact":
        assert re.sub(r"\s+", "", clean_quote(quote)) == re.sub(r"\s+", "", m.text)
    elif m.kind == "normalized":
        assert edits == 0
    else:
        assert m.kind == "fuzzy" and edits > 0
    if clean_quote(quote) != m.text:
        ops = m.diff
        assert ops and "".join(o["quote"] for o in ops) == clean_quote(quote)
        assert "".join(o["original"] for o in ops) == m.text
        assert {o["op"] for o in ops} <= {"equal", "replace", "insert", "delete"}
    else:
        assert m.diff == []


def gold_span(raw: str, case: dict) -> tuple[int, int]:
    s = raw.index(case["gold_quote"])
    e = s + len(case["gold_quote"])
    if case.get("gold_quote_after"):
        a = raw.index(case["gold_quote_after"], e)
        e = a + len(case["gold_quote_after"])
    return s, e


def iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


# --------------------------------------------------------------------------- variants

@pytest.mark.skipif(not DEV.exists(), reason="dev cases not available")
def test_dev_cases_every_variant(citer, index):
    cases = [json.loads(l) for l in DEV.read_text(encoding="utf-8").splitlines() if l.strip()]
    for c in cases:
        res = citer.lookup(c["quote"], related=False)
        assert res.matches, c
        m = res.matches[0]
        check_match(index, c["quote"], m)
        assert m.source == c["gold_file"]
        g = gold_span(raw_of(index, m.source), c)
        assert iou((m.start, m.end), g) >= 0.95, (c, m)
        want = {"exact": "exact", "partial": "exact", "punct": "normalized", "traditional": "normalized",
                "typo": "fuzzy"}.get(c["variant"])
        if want:
            assert m.kind == want, (c, m)


def test_generated_variants(citer, index):
    """Random seed sentences quoted the ways people do (see bench/bench_cite.py)."""
    cases = bench_cite.make_cases(index.store, per_variant=12, seed=7)
    per: dict[str, list[bool]] = {}
    for c in cases:
        ms = citer.find(clean_quote(c["quote"]))
        for m in ms:
            check_match(index, c["quote"], m)
        loc, tight = bench_cite._score(c, ms)
        per.setdefault(c["variant"], []).append(tight)
    assert set(per) >= {"exact", "punct", "width", "traditional", "typo", "drop", "fragment",
                        "page_break", "two_paragraphs", "long"}
    for variant, ok in per.items():
        assert np.mean(ok) >= 0.9, (variant, np.mean(ok))
    assert np.mean([x for v in per.values() for x in v]) >= 0.97


def test_page_break_span_runs_across_the_blank_line(citer, index):
    q = "涉藏州县依法常态化治理基础仍然薄弱，重点部位、重点物品管控还有漏洞，容易受到敌对势力蛊惑利用。"
    m = citer.lookup(q, related=False).matches[0]
    raw = raw_of(index, m.source)
    assert "\n\n" in raw[m.start:m.end]
    assert raw[m.start:m.end].startswith("涉藏州县") and raw[m.start:m.end].endswith("蛊惑利用。")
    assert m.text == q and m.kind == "exact" and m.diff == []
    check_match(index, q, m)


def test_quote_spanning_two_paragraphs(citer, index):
    joins = {j for _p, c in index.store.iter_chunks() for j in c.joins}
    src = index.store.files()[0][0]
    raw = raw_of(index, src)
    for mt in re.finditer(r"(?<=[。！？])\n\n(?=[\u4e00-\u9fff])", raw):
        k = mt.start()
        if k < 3000 or k in joins or "\n" in raw[k - 20:k] or "\n" in raw[k + 2:k + 22]:
            continue
        break
    before, after = raw[k - 20:k], raw[k + 2:k + 22]
    for q in (before + after, before + "\n" + after):
        m = citer.lookup(q, related=False).matches[0]
        assert (m.source, m.start, m.end) == (src, k - 20, k + 22)
        assert m.text == before + "\n" + after
        check_match(index, q, m)


def test_long_quote_over_several_chunks(citer, index):
    c1, c2, c3 = index.store.chunks([10, 11, 12])
    assert c1.source == c3.source
    raw = raw_of(index, c1.source)
    q = re.sub(r"\s+", "", raw[c1.start + 5:c3.end - 5])
    q = q[:40] + "某" + q[41:300] + q[302:]          # a typo and two dropped characters
    assert len(q) > 500
    m = citer.lookup(q, related=False).matches[0]
    assert m.kind == "fuzzy"
    assert iou((m.start, m.end), (c1.start + 5, c3.end - 5)) > 0.99
    check_match(index, q, m)


def test_fragment_inside_a_long_sentence(citer, index):
    q = "特殊人员服务管理"
    m = citer.lookup(q, related=False).matches[0]
    assert raw_of(index, m.source)[m.start:m.end] == q and m.kind == "exact"


# ------------------------------------------------------------------- several occurrences

FILLER = [
    "全国公安机关坚持以习近平新时代中国特色社会主义思想为指导，深入贯彻党的二十大精神，扎实推进各项工作。",
    "各地公安机关认真落实会议部署，结合实际细化措施，推动工作落地见效，取得了明显成效。",
    "要坚持政治建警、改革强警、科技兴警、从严治警，全面加强公安队伍建设。",
]


def _para(i: int) -> str:
    return FILLER[i % 3] + f"第{i}段的补充说明文字，记录有关情况。" + FILLER[(i + 1) % 3]


def test_several_occurrences_all_listed_best_first(tmp_path):
    s = "夏季治安打击整治行动期间，共破获各类刑事案件一千二百余起，抓获犯罪嫌疑人八百余名。"
    typo = s.replace("破获", "破或")
    a = "\n\n".join([_para(i) for i in range(3)] + [s] + [_para(i) for i in range(3, 12)]
                    + ["另据统计，" + typo] + [_para(i) for i in range(12, 14)]) + "\n"
    b = "\n\n".join([_para(i) for i in range(20, 25)] + ["报告指出：“" + s + "”"]) + "\n"
    ix = store_index(tmp_path, {"a.txt": a, "b.txt": b})
    ms = Citer(ix).lookup(s, related=False).matches
    assert len(ms) == 3
    assert [m.kind for m in ms] == ["exact", "exact", "fuzzy"]
    assert sorted((m.source, m.start) for m in ms[:2]) == [("a.txt", a.index(s)), ("b.txt", b.index(s))]
    assert (ms[2].source, ms[2].start, ms[2].end) == ("a.txt", a.index(typo), a.index(typo) + len(typo))
    assert ms[2].diff == [{"op": "equal", "quote": s[:s.index("破获") + 1], "original": s[:s.index("破获") + 1]},
                          {"op": "replace", "quote": "获", "original": "或"},
                          {"op": "equal", "quote": s[s.index("破获") + 2:], "original": s[s.index("破获") + 2:]}]
    for m in ms:
        check_match(ix, s, m)


def test_traditional_corpus_simplified_quote(tmp_path, index):
    import opencc

    src = index.store.files()[0][0]
    trad = opencc.OpenCC("s2t").convert(raw_of(index, src))
    ix = store_index(tmp_path, {"trad.txt": trad})
    q = "深化运用监督执纪“四种形态”，扎实开展群众身边不正之风和腐败问题集中整治"
    m = Citer(ix).lookup(q, related=False).matches[0]
    assert m.kind == "normalized" and m.similarity == 1.0
    assert m.text == opencc.OpenCC("s2t").convert(q)
    check_match(ix, q, m)


# ------------------------------------------------------------------------- negatives

def test_negatives_have_no_match_but_related_passages(citer):
    assert len(NEGATIVES) >= 20
    for q in NEGATIVES:
        assert citer.find(clean_quote(q)) == [], q
    res = citer.lookup(NEGATIVES[0], k=3)
    assert res.matches == [] and len(res.related) == 3
    assert all(r["label"] == "related, not a match" for r in res.related)
    assert [r["rank"] for r in res.related] == [1, 2, 3]
    d = res.to_dict()
    assert d["matches"] == [] and d["related"][0]["source"]
    assert "not found in the corpus" in cite.format_result(res)


def test_related_passages_exclude_the_match(citer):
    q = "以主动工作赢得工作主动，以工作的确定性应对风险的不确定性，做到先发制人以致胜。"
    res = citer.lookup(q, k=3)
    m = res.matches[0]
    assert len(res.related) == 3
    for r in res.related:
        assert not (r["source"] == m.source and r["start"] < m.end and m.start < r["end"])
    json.dumps(res.to_dict(), ensure_ascii=False)


def test_short_near_misses_are_not_matches(citer):
    assert citer.find("依法严厉打击侵犯") == []          # corpus: 依法严厉打击整治
    assert citer.find("坚持政治建警改革") == []            # 8 characters, not in the seeds
    # 4-7 characters: only exact (normalized) matches
    assert citer.find("特殊人员服务") and citer.find("特殊人员服物") == []


# ---------------------------------------------------------------------- input checks

@pytest.mark.parametrize("quote,message", [
    ("", "the quote is empty"),
    ("   \n\t\u3000 ", "the quote is empty"),
    ("公" * 2001, "the limit is 2000"),
    ("公安", "too short"),
    ("“，。”", "too short"),
    (None, "must be text"),
])
def test_bad_quotes(citer, quote, message):
    with pytest.raises(RagError, match=message):
        citer.lookup(quote)


def test_quote_at_the_limit_and_control_characters(citer):
    q = "以主动工作赢得工作主动\x00以工作的确定性应对风险的不确定性"
    assert citer.lookup(q, related=False).matches
    assert citer.lookup("公" * 2000, related=False).matches == []


# --------------------------------------------------------------------------- internals

def test_bit_parallel_rows_equal_dynamic_programming():
    rng = random.Random(3)
    for _ in range(400):
        q = np.array([rng.randrange(-1, 4) for _ in range(rng.randint(1, 90))])
        t = np.array([rng.randrange(4) for _ in range(rng.randint(0, 200))])
        for free in (True, False):
            assert (_last_row(q, t, free) == _last_row_dp(q, t, free)).all()


def test_align_finds_the_tight_span():
    t = np.array([ord(c) for c in "xxxxabcdefghyyyy"])
    q = np.array([ord(c) for c in "abcXefgh"])
    assert align(q, t, 4) == (4, 12, 1)


def test_normalize_map_points_at_raw_characters():
    raw = "“現代化”\n\n建設，ＡＢＣ１２\u3000x"
    norm, origin = normalize_map(raw)
    assert norm == "现代化建设abc12x"
    assert [raw[i] for i in origin] == list("現代化建設ＡＢＣ１２x")


def test_postings_built_once_and_lookup_does_not_scan_chunks(index, monkeypatch):
    c1, c2 = Citer(index), Citer(index)
    assert c1.postings is c2.postings

    def boom(*_a, **_k):
        raise AssertionError("lookup must use the postings, not scan chunks")

    monkeypatch.setattr(index.store, "iter_chunks", boom)
    assert c1.lookup("树牢底线思维、极限思维", related=False).matches


def test_render_diff():
    assert render_diff([{"op": "equal", "quote": "a", "original": "a"},
                        {"op": "replace", "quote": "x", "original": "y"},
                        {"op": "delete", "quote": "z", "original": ""},
                        {"op": "insert", "quote": "", "original": "w"}]) == "a[-x-]{+y+}[-z-]{+w+}"


def test_result_to_dict_shape(citer):
    res = citer.lookup("公安队伍为党而生、因党而星、向党而强", related=False)
    assert isinstance(res, CiteResult)
    d = res.to_dict()
    assert set(d) == {"quote", "matches", "related"}
    assert set(d["matches"][0]) == {f.name for f in CITATION_FIELDS} | {"similarity", "kind", "diff"}
    assert {"source", "start", "end", "text", "title", "author", "section", "paragraph", "page"} <= set(d["matches"][0])
    m = d["matches"][0]
    assert m["title"] and m["author"] and isinstance(m["section"], list) and m["paragraph"] >= 1


# -------------------------------------------------------------------------------- CLI

def test_cli_cite_json(cli, seed_index):
    p = cli("cite", "树牢底线思维 极限思维，下好先手棋 打好主动仗", "--json", "--index", str(seed_index), "-k", "2")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["matches"][0]["kind"] == "normalized" and len(d["related"]) == 2


def test_cli_cite_text_output(cli, seed_index):
    p = cli("cite", "公安队伍为党而生、因党而星、向党而强", "--index", str(seed_index), "--no-related")
    assert p.returncode == 0, p.stderr
    assert "fuzzy" in p.stdout and "[-星-]{+兴+}" in p.stdout and "《" in p.stdout
    p = cli("cite", NEGATIVES[1], "--index", str(seed_index), "--no-related")
    assert p.returncode == 0 and "not found in the corpus" in p.stdout


@pytest.mark.parametrize("quote", ["", "   ", "公安", "公" * 2001])
def test_cli_cite_bad_quote_exit_2(cli, seed_index, quote):
    p = cli("cite", quote, "--index", str(seed_index))
    assert p.returncode == 2 and p.stderr.startswith("error: ") and len(p.stderr.strip().splitlines()) == 1


def test_cli_cite_needs_quote_or_input(cli, seed_index, tmp_path):
    assert cli("cite", "--index", str(seed_index)).returncode == 2
    assert cli("cite", "--index", str(tmp_path / "none"), "树牢底线思维").returncode == 2


def test_cli_cite_batch(cli, seed_index, tmp_path):
    inp = tmp_path / "q.jsonl"
    inp.write_text("\n".join([
        json.dumps({"id": "a", "quote": "以科学的兰图指引、一年接着一年干"}, ensure_ascii=False),
        "{not json",
        json.dumps({"id": "b"}),
        json.dumps({"id": "c", "quote": "  "}),
        json.dumps({"id": "d", "quote": NEGATIVES[2]}, ensure_ascii=False),
    ]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    p = cli("cite", "--input", str(inp), "-o", str(out), "--index", str(seed_index), "-k", "1")
    assert p.returncode == 0, p.stderr
    assert ":2:" in p.stderr and ":3:" in p.stderr and ":4:" in p.stderr
    rows = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "d"]
    assert rows[0]["matches"][0]["kind"] == "fuzzy" and rows[1]["matches"] == []
    assert len(rows[1]["related"]) == 1 and rows[1]["related"][0]["label"] == "related, not a match"
