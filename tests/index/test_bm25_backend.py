"""rag.index.sparse.bm25: the keyword leg written into a generation and opened again."""
from __future__ import annotations

import math

import numpy as np

from rag.index.sparse import BM25Backend, Tokenizer

DOCS = ["公安机关打击电信网络诈骗犯罪", "社区民警化解矛盾纠纷", "电信网络诈骗 电信网络诈骗 宣传", ""]


def _open(tmp_path):
    tok = Tokenizer()
    info = BM25Backend().build(tmp_path, [tok(d) for d in DOCS])
    return tok, info, BM25Backend().open(tmp_path)


def test_build_reports_lucene_parameters_and_count(tmp_path):
    _tok, info, idx = _open(tmp_path)
    assert info == {"k1": 1.2, "b": 0.75, "docs": len(DOCS)} and idx.ntotal == len(DOCS)


def test_scores_rank_by_term_frequency_and_zero_for_unknown(tmp_path):
    tok, _info, idx = _open(tmp_path)
    s = idx.scores(tok.query_terms("电信诈骗"))
    assert s.shape == (len(DOCS),) and s[1] == 0 and s[3] == 0
    assert s[2] > s[0] > 0                                  # two mentions beat one
    assert not idx.scores(["不存在的词"]).any() and not idx.scores([]).any()


def test_idf_matches_lucene_formula(tmp_path):
    tok, _info, idx = _open(tmp_path)
    idf = idx.idf(["电信", "民警", "不存在"])
    n = len(DOCS)
    assert set(idf) == {"电信", "民警"}
    assert math.isclose(idf["电信"], math.log(1 + (n - 2 + 0.5) / (2 + 0.5)), rel_tol=1e-6)
    assert idf["民警"] > idf["电信"]                         # rarer term, higher idf
    assert idx.knows("民警") and not idx.knows("不存在")


def test_reopened_scores_are_identical(tmp_path):
    tok, _info, a = _open(tmp_path)
    b = BM25Backend().open(tmp_path)
    q = tok.query_terms("矛盾纠纷 电信")
    assert np.array_equal(a.scores(q), b.scores(q))
