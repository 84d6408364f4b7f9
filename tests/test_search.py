"""Hybrid search on the seed index: result fields and offsets, overlap, filters, input
checks, hostile queries, answers to questions checked by hand, the English path."""
from __future__ import annotations

import pytest

from rag.chunks.cleaning import clean
from rag.errors import RagError
from rag.index import load
from rag.search import MAX_K, MAX_QUERY_CHARS, Searcher, check_k, clean_query

from conftest import read_raw

FILE0 = "000_9fefdf128692389e.txt"   # 湖南 (王一鸥), 四川 (黄瑞雪), 贵州 (王冬斌)
FILE3 = "003_8750069abcf0ab7e.txt"   # 广东 (王志忠), 青海 (李宏亚)

FIELD_QUERIES = ["湖南公安工作的规律性认识", "电信网络诈骗", "青海 两个确立 政治建警",
                 "What does Guangdong police do to fight telecom fraud?"]


@pytest.fixture(scope="module")
def index(seed_index):
    idx = load(seed_index)
    yield idx
    idx.store.close()


@pytest.fixture(scope="module")
def searcher(index):
    return Searcher(index)


@pytest.fixture(scope="module")
def chunks_by_id(index):
    return {c.id: c for _, c in index.store.iter_chunks()}


@pytest.fixture(scope="module")
def raw(seeds_dir):
    return {name: read_raw(seeds_dir / name) for name in (FILE0, FILE3)}


@pytest.fixture(scope="module")
def field_results(searcher):
    return {q: searcher.search(q, k=10) for q in FIELD_QUERIES}


# ------------------------------------------------------------------------- result fields

@pytest.mark.parametrize("query", FIELD_QUERIES)
def test_result_fields_and_offsets(field_results, chunks_by_id, raw, query):
    results = field_results[query]
    assert len(results) == 10
    assert [r.rank for r in results] == list(range(1, 11))
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    for r in results:
        c = chunks_by_id[r.id]
        assert (r.source, r.start, r.end) == (c.source, c.start, c.end)
        assert (r.title, r.author, r.section, r.paragraph) == (c.title, c.author, c.section, c.paragraph)
        assert r.source in raw and 0 <= r.start < r.end <= len(raw[r.source])
        text = raw[r.source]
        assert r.text == clean(text[r.start:r.end], c.joins, r.start)
        assert isinstance(r.section, list) and all(isinstance(s, str) for s in r.section)
        assert isinstance(r.paragraph, int) and r.paragraph >= 0
        assert r.title and r.author
        # the best sentence: a span inside the chunk whose cleaning is the sentence shown
        bs = r.best_sentence
        assert set(bs) >= {"text", "start", "end"} and bs["text"].strip()
        assert r.start <= bs["start"] < bs["end"] <= r.end
        assert clean(text[bs["start"]:bs["end"]], c.joins, bs["start"]) == bs["text"]
        assert bs["text"] in r.text
        # every matched term literally occurs in the passage
        for term in r.matched:
            assert term in r.text.lower(), (term, r.text)
        assert r.to_dict()["best_sentence"] == bs


@pytest.mark.parametrize("query", FIELD_QUERIES)
def test_no_two_results_overlap_in_a_source(field_results, query):
    results = field_results[query]
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            assert a.id != b.id
            if a.source == b.source:
                assert a.end <= b.start or b.end <= a.start, (a.start, a.end, b.start, b.end)


def test_best_sentence_shares_query_words(searcher):
    r = searcher.search("四川全省网民规模超过多少？", k=1)[0]
    assert "网民规模" in r.best_sentence["text"]
    assert len(r.best_sentence["text"]) < len(r.text)


# ------------------------------------------------------------------------------- filters

def test_filter_by_source(searcher):
    results = searcher.search("公安工作 安全稳定", k=10, source=FILE3)
    assert len(results) == 10
    assert all(r.source == FILE3 for r in results)
    assert searcher.search("公安工作", k=5, source="no_such_file.txt") == []


@pytest.mark.parametrize("article, field", [("李宏亚", "author"), ("湖南", "title"), ("王冬斌", "author")])
def test_filter_by_article(searcher, index, article, field):
    # a question about Sichuan, restricted to another article: the filter picks the
    # best chunks of that article, it does not just drop rows of the global top k
    results = searcher.search("四川全省网民规模超过多少？", k=5, article=article)
    assert len(results) == min(5, len(index.store.positions_where(article=article)))
    assert results
    for r in results:
        assert article in r.title or article in r.author
        assert article in getattr(r, field)


def test_filters_combine_and_are_not_patterns(searcher):
    assert searcher.search("公安", k=5, source=FILE0, article="李宏亚") == []   # 李宏亚 is in FILE3
    both = searcher.search("公安", k=5, source=FILE3, article="李宏亚")
    assert both and all(r.source == FILE3 and r.author == "李宏亚" for r in both)
    assert searcher.search("公安", k=5, source="%") == []
    assert searcher.search("公安", k=5, source="_00_9fefdf128692389e.txt") == []
    assert searcher.search("公安", k=5, article="%") == []


# --------------------------------------------------------------------------- input checks

@pytest.mark.parametrize("k", [0, -1, MAX_K + 1, "x", 1.5, None, True])
def test_bad_k_is_refused(searcher, k):
    with pytest.raises(RagError) as e:
        searcher.search("公安", k=k)
    assert "k must be" in str(e.value)
    with pytest.raises(RagError):
        check_k(k)


def test_k_bounds_accepted(searcher):
    assert check_k(1) == 1 and check_k(MAX_K) == MAX_K and check_k(5.0) == 5
    assert len(searcher.search("公安", k=1)) == 1
    many = searcher.search("公安", k=MAX_K)
    assert 10 < len(many) <= searcher.n


def test_query_length_limit():
    assert len(clean_query("公" * MAX_QUERY_CHARS)) == MAX_QUERY_CHARS
    assert clean_query("  " + "公" * MAX_QUERY_CHARS + "\n") == "公" * MAX_QUERY_CHARS   # stripped first
    with pytest.raises(RagError, match=str(MAX_QUERY_CHARS)):
        clean_query("公" * (MAX_QUERY_CHARS + 1))


@pytest.mark.parametrize("query", ["", "   ", "\n\t\u3000 ", "\x00\x01\x1f", "x" * (MAX_QUERY_CHARS + 1), None, 42])
def test_bad_queries_are_refused(searcher, query):
    with pytest.raises(RagError) as e:
        searcher.search(query)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("query", [
    "湖南\x00公安\x07工作\x1b[31m",
    "\ud800湖南公安\udfff",
    "🚓👮‍♀️ 公安 🇨🇳",
    "<script>alert('公安')</script><b>湖南</b>",
    "'; DROP TABLE chunks; --",
    "湖南\" OR \"1\"=\"1",
    "%_% \\ 公安",
])
def test_odd_queries_are_answered(searcher, index, query):
    before = index.store.count()
    results = searcher.search(query, k=5)
    assert isinstance(results, list) and len(results) <= 5
    assert [r.rank for r in results] == list(range(1, len(results) + 1))
    assert index.store.count() == before
    assert clean_query(query) == clean_query(clean_query(query))


# ------------------------------------------------------------- answers checked by hand

# (question, gold file, author of the article, words where the answer stands)
ZH_QUESTIONS = [
    ("四川全省网民规模超过多少？", FILE0, "黄瑞雪", "全省网民规模超过 7000 万"),
    ("青海地处什么样的战略要地？", FILE3, "李宏亚", "青海地处“稳疆固藏”的战略要地"),
    ("习近平总书记在“十四五”期间几次亲临贵州考察？", FILE0, "王冬斌", "两次亲临贵州考察"),
]


@pytest.mark.parametrize("question, gold, author, quote", ZH_QUESTIONS)
def test_chinese_question_finds_the_answer_in_top3(searcher, raw, question, gold, author, quote):
    at = raw[gold].find(quote)
    assert at >= 0 and raw[gold].count(quote) == 1, "the answer stands once in the seed"
    top = searcher.search(question, k=3)
    hits = [r for r in top if r.source == gold and r.author == author
            and r.start <= at and at + len(quote) <= r.end]
    assert hits, [(r.source, r.start, r.end, r.author) for r in top]


# (question, Chinese province name, author of that province's article)
EN_QUESTIONS = [
    ("What does Guangdong police do to fight telecom fraud?", "广东", "王志忠"),
    ("What strategic area is Qinghai located in?", "青海", "李宏亚"),
]


@pytest.mark.parametrize("question, province, author", EN_QUESTIONS)
def test_english_question_with_a_province_finds_its_article(searcher, question, province, author):
    top = searcher.search(question, k=5)
    ours = [r for r in top if r.author == author]
    assert ours, [(r.rank, r.author) for r in top]
    # the dictionary path turned the province into its Chinese name
    assert any(province in r.matched for r in ours)


# ----------------------------------------------------------------------------- batching

def test_search_many_equals_one_by_one(searcher):
    queries = ["湖南公安工作的规律性认识", "What strategic area is Qinghai located in?",
               "四川全省网民规模超过多少？", "\x00电信网络诈骗  "]
    many = searcher.search_many(queries, k=7)
    assert len(many) == len(queries)
    for q, got in zip(queries, many):
        one = searcher.search(q, k=7)
        assert [(r.id, r.rank, r.best_sentence) for r in got] == [(r.id, r.rank, r.best_sentence) for r in one]
        # a padded batch runs different matrix shapes: the same vector up to float rounding
        assert [r.score for r in got] == pytest.approx([r.score for r in one], abs=1e-5)
    filtered = searcher.search_many(queries[:2], k=3, article="王一鸥")
    for q, got in zip(queries[:2], filtered):
        assert [r.id for r in got] == [r.id for r in searcher.search(q, k=3, article="王一鸥")]
    assert searcher.search_many([], k=3) == []


def test_to_dict_equals_a_deep_copy(searcher):
    from dataclasses import asdict

    for r in searcher.search("湖南公安工作的规律性认识", k=3):
        d = r.to_dict()
        assert d == asdict(r)
        d["section"].append("x")
        d["best_sentence"]["start"] = -1
        assert r.to_dict() == asdict(r) != d      # the copy is the caller's to change
