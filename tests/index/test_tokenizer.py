"""rag.index.sparse.tokenizer: the keyword tokens BM25 sees, for passages and queries alike."""
from __future__ import annotations

from rag.index.sparse.tokenizer import STOPWORDS, Tokenizer, normalize, quoted_terms


def test_normalize_folds_width_case_and_traditional():
    assert normalize("ＡＢＣ１１０") == "abc110"
    assert normalize("公安機關與國家") == "公安机关与国家"


def test_quoted_terms_are_short_phrases_of_the_corpus_normalised():
    texts = ["坚持“两个确立”，做到“八个不发生”。", "他说“好”。", "「枫桥经验」", '"…"']
    assert quoted_terms(texts) == ["两个确立", "八个不发生", "枫桥经验"] or \
        sorted(quoted_terms(texts)) == sorted(["两个确立", "八个不发生", "枫桥经验"])
    assert "好" not in quoted_terms(texts)            # one character: too short to be a term
    assert "…" not in quoted_terms(texts)            # punctuation only


def test_tokens_drop_stopwords_and_punctuation():
    tok = Tokenizer()
    toks = tok("公安机关的主要任务是什么？")
    assert toks and not any(t in STOPWORDS for t in toks)
    assert "？" not in toks and "公安" in toks


def test_quoted_user_words_stay_whole():
    plain, with_words = Tokenizer(), Tokenizer(["八个不发生"])
    assert "八个不发生" not in plain("确保八个不发生")
    assert "八个不发生" in with_words("确保八个不发生")


def test_query_terms_are_distinct_in_order():
    tok = Tokenizer()
    terms = tok.query_terms("电信诈骗 电信诈骗 治理")
    assert len(terms) == len(set(terms)) and terms.index("电信") < terms.index("治理")


def test_passage_and_query_are_cut_alike_whatever_the_script():
    tok = Tokenizer()
    assert tok("電信網絡詐騙") == tok("电信网络诈骗")
