"""A build that flushes a segment every RAG_FLUSH_CHUNKS chunks (its RAM buffer) and merges
no segment past RAG_MAX_SEGMENT_CHUNKS answers exactly as a build into one segment: same
chunks in the same order, same vectors, same BM25 scores, same search results. Runs on the
tiny corpus of conftest with the tiny embedder (a few seconds).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag import settings
from rag.index import build, load
from rag.index.builder import merge_plan
from rag.index.embcache import EmbedCache
from rag.search import Searcher

from conftest import TINY_DOCS_V2, TINY_EMBEDDER, write_corpus

QUERIES = ["马背警务 户籍", "大熊猫 盗猎", "珊瑚礁 渔船", "骆驼 沙漠 游客", "民宿 蜂蜜", "民警"]


def _build(corpus: Path, index: Path, monkeypatch, **env) -> None:
    for k in ("RAG_FLUSH_CHUNKS", "RAG_MAX_SEGMENT_CHUNKS", "RAG_MERGE_FACTOR"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    settings.get.cache_clear()
    try:
        build(corpus, index, embedder=TINY_EMBEDDER)
    finally:
        settings.get.cache_clear()


def _answers(index: Path) -> dict:
    idx = load(index)
    try:
        s = Searcher(idx)
        pos = np.arange(idx.size)
        return {
            "segments": [sg["rows"] for sg in idx.manifest["segments"]],
            "chunks": [(p, c.source, c.start, c.end, c.text) for p, c in idx.store.iter_chunks()],
            "vectors": idx.dense.vectors(pos),
            "bm25": {q: idx.sparse.scores(idx.tokenizer.query_terms(q)) for q in QUERIES},
            "results": {q: [(r.source, r.start, r.end) for r in s.search(q, k=8)] for q in QUERIES},
            "scores": {q: [(r.score, r.scores["dense"], r.scores["bm25"]) for r in s.search(q, k=8)]
                       for q in QUERIES},
        }
    finally:
        idx.store.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("stream") / "corpus", TINY_DOCS_V2)


@pytest.fixture(scope="module")
def one(corpus, tmp_path_factory) -> dict:
    mp = pytest.MonkeyPatch()
    index = tmp_path_factory.mktemp("one") / "index"
    try:
        _build(corpus, index, mp)
        return _answers(index)
    finally:
        mp.undo()


def test_flushed_segments_answer_as_one_segment(corpus, one, tmp_path, monkeypatch):
    _build(corpus, tmp_path / "index", monkeypatch, RAG_FLUSH_CHUNKS=2)
    got = _answers(tmp_path / "index")
    assert len(one["segments"]) == 1
    assert len(got["segments"]) > 1, "a small buffer makes several segments"
    assert sum(got["segments"]) == one["segments"][0]
    assert got["chunks"] == one["chunks"], "same chunks at the same positions"
    assert np.array_equal(got["vectors"], one["vectors"])
    for q in QUERIES:
        assert np.array_equal(got["bm25"][q], one["bm25"][q]), q      # corpus-wide statistics
        assert got["results"][q] == one["results"][q], q
        # dense scores of the same vectors are computed segment by segment (BLAS rounding)
        assert np.allclose(got["scores"][q], one["scores"][q], atol=1e-5), q


def test_merges_stay_under_the_largest_segment(corpus, one, tmp_path, monkeypatch):
    total = one["segments"][0]
    cap = max(2, total // 2)
    _build(corpus, tmp_path / "index", monkeypatch, RAG_FLUSH_CHUNKS=1, RAG_MERGE_FACTOR=2,
           RAG_MAX_SEGMENT_CHUNKS=cap)
    got = _answers(tmp_path / "index")
    assert len(got["segments"]) >= 2 and max(got["segments"]) <= cap
    assert sorted(c[1:] for c in got["chunks"]) == sorted(c[1:] for c in one["chunks"])
    for q in QUERIES:
        assert got["results"][q] == one["results"][q], q
        assert np.allclose(got["scores"][q], one["scores"][q], atol=1e-5), q
    assert not (tmp_path / "index" / "embed-cache").exists(), "the commit clears the embedding cache"


def test_merge_plan_respects_the_largest_segment():
    sizes = {f"s{i}": (100, 100) for i in range(8)}
    assert merge_plan(sizes, 8, floor=10) == sorted(sizes)               # a full tier merges
    assert merge_plan(sizes, 8, floor=10, max_rows=350) == ["s0", "s1", "s2"]  # no more than 350 rows
    big = {**sizes, "big": (400, 400)}
    assert "big" not in merge_plan(big, 8, floor=10, max_rows=500)      # over half the cap: done
    assert merge_plan({"a": (100, 100), "b": (100, 30)}, 8, floor=10) == ["b"]   # mostly deleted: expunged


def test_embedding_cache_groups_fast_batches(tmp_path):
    c = EmbedCache(tmp_path, "x")
    c.append([b"a" * 20], np.ones((1, 4), np.float32))
    c2 = EmbedCache(tmp_path, "x")                 # a resumed build numbers after what is there
    c2.append([b"b" * 20], np.zeros((1, 4), np.float32))
    keys, mat = EmbedCache(tmp_path, "x").load()
    assert set(keys) == {b"a" * 20, b"b" * 20} and mat.shape == (2, 4)
    assert len(list((tmp_path / "embed-cache").glob("batch-*.npz"))) == 2


def test_embedding_cache_keeps_digests_ending_in_nul(tmp_path):
    key = b"\x01" * 19 + b"\x00"                   # numpy "S20" strips trailing NULs
    EmbedCache(tmp_path, "x").append([key], np.ones((1, 4), np.float32))
    keys, _ = EmbedCache(tmp_path, "x").load()
    assert key in keys


def test_documents_over_the_scan_budget_are_read_again(corpus, one, tmp_path, monkeypatch):
    import rag.index.builder as builder

    monkeypatch.setattr(builder, "SCAN_TEXT_BUDGET", 0)       # no document text held after the scan
    _build(corpus, tmp_path / "index", monkeypatch, RAG_FLUSH_CHUNKS=3)
    got = _answers(tmp_path / "index")
    assert got["chunks"] == one["chunks"]
    for q in QUERIES:
        assert got["results"][q] == one["results"][q], q


def test_a_file_changed_between_scan_and_cut_is_refused(tmp_path, monkeypatch):
    import rag.index.builder as builder
    from rag.errors import CorpusError

    src = write_corpus(tmp_path / "corpus", TINY_DOCS_V2)
    monkeypatch.setattr(builder, "SCAN_TEXT_BUDGET", 0)
    real_scan = builder._scan

    def scan_then_edit(corpus_dir, old, only=None):
        out = real_scan(corpus_dir, old, only)
        (src / "a.txt").write_text("改过的文本。" * 20, encoding="utf-8")
        return out

    monkeypatch.setattr(builder, "_scan", scan_then_edit)
    with pytest.raises(CorpusError, match="changed while the index was being built"):
        build(src, tmp_path / "index", embedder=TINY_EMBEDDER)
    assert not (tmp_path / "index" / "CURRENT").exists()
