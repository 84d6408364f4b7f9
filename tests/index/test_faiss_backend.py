"""rag.index.dense: the FAISS backend behind the DenseIndex interface, and the registry."""
from __future__ import annotations

import numpy as np
import pytest

from rag.errors import BadInput
from rag.index.dense import BACKENDS, DenseIndex
from rag.index.dense.faiss_flat import FLAT_MAX, FaissBackend, choose


def _unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_choose_by_size_and_refuses_unknown_kinds():
    assert choose(10) == "flat" and choose(FLAT_MAX + 1) == "ivf" and choose(10, "hnsw") == "hnsw"
    with pytest.raises(BadInput, match="unknown ANN index 'pq'"):
        choose(10, "pq")


@pytest.mark.parametrize("ann", ["flat", "ivf", "hnsw"])
def test_built_index_answers_like_exact_search(tmp_path, ann):
    vecs, queries = _unit(500), _unit(8, seed=1)
    info = FaissBackend().build(tmp_path, vecs, {"ann": ann})
    assert info["ann"] == ann and set(FaissBackend().files(info)) <= {p.name for p in tmp_path.iterdir()}
    idx = FaissBackend().open(tmp_path, info)
    assert isinstance(idx, DenseIndex) and idx.ntotal == 500
    exact = np.argsort(-(queries @ vecs.T), axis=1)[:, :10]
    got = idx.search(queries, 10)
    recall = np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact)])
    assert recall == 1.0 if ann == "flat" else recall >= 0.9


def test_scores_subset_and_stored_vectors_are_exact(tmp_path):
    vecs, q = _unit(50), _unit(1, seed=2)[0]
    FaissBackend().build(tmp_path, vecs, {})
    idx = FaissBackend().open(tmp_path, {})
    ids = np.array([3, 7, 41])
    assert np.allclose(idx.scores(q, ids), vecs[ids] @ q, atol=1e-6)
    assert idx.search_subset(q, ids, 2).tolist() == ids[np.argsort(-(vecs[ids] @ q))[:2]].tolist()
    assert np.array_equal(idx.vectors(ids), vecs[ids])


def test_registry_knows_faiss_and_names_the_choices_for_unknown():
    assert isinstance(BACKENDS.get("faiss"), FaissBackend) and "faiss" in BACKENDS.names()
    with pytest.raises(BadInput, match="unknown index backend 'nope': use one of .*faiss"):
        BACKENDS.get("nope")


def test_deleted_rows_are_never_returned(tmp_path):
    vecs, queries = _unit(400), _unit(4, seed=3)
    info = FaissBackend().build(tmp_path, vecs, {"ann": "ivf"})
    idx = FaissBackend().open(tmp_path, info)
    dead = np.argsort(-(queries @ vecs.T), axis=1)[:, :5].ravel()      # every query's best rows
    rows, scores = idx.search_rows(queries, 10, np.unique(dead))
    assert not np.isin(rows, dead).any()
    ok = rows >= 0
    assert np.allclose(scores[ok], np.einsum("qd,qkd->qk", queries, vecs[np.maximum(rows, 0)])[ok], atol=1e-5)


def test_ivf_matrix_in_list_order_gives_rows_by_their_own_numbers(tmp_path):
    """IVF segments store vectors in list order (a probed list is one contiguous range);
    scores, vectors and search still speak of rows, and equal the row-ordered answers."""
    vecs, queries = _unit(600, seed=4), _unit(6, seed=5)
    info = FaissBackend().build(tmp_path, vecs, {"ann": "ivf"})
    assert info["ordered"] and "order" not in info
    stored = np.load(tmp_path / "vectors.npy")
    assert not np.array_equal(stored, vecs) and np.array_equal(np.sort(stored, axis=0), np.sort(vecs, axis=0))
    idx = FaissBackend().open(tmp_path, info)
    ids = np.array([0, 5, 599, 123])
    assert np.array_equal(idx.vectors(ids), vecs[ids])
    assert np.allclose(idx.scores(queries[0], ids), vecs[ids] @ queries[0], atol=1e-6)
    rows, scores = idx.search_rows(queries, 10, None)
    assert np.allclose(scores, np.einsum("qd,qkd->qk", queries, vecs[rows]), atol=1e-5)
    # the same lists probed over a row-ordered matrix (older segments) give the same answer
    old = FaissBackend().open(tmp_path, dict(info, ordered=False, codes=None))
    old.matrix = vecs
    old_rows, _ = old.search_rows(queries, 10, None)
    assert np.array_equal(rows, old_rows)


def test_ivf_codes_find_what_the_float_scan_finds_and_older_segments_open(tmp_path):
    """IVF segments carry 8-bit codes of their lists (FAISS IVF-SQ8, memory-mapped): the
    candidates come from the codes, their scores from the float32 matrix. A segment written
    before the codes existed (no "codes" in its info) still opens and scans the floats."""
    vecs, queries = _unit(3000, dim=32, seed=6), _unit(20, dim=32, seed=7)
    info = FaissBackend().build(tmp_path, vecs, {"ann": "ivf"})
    assert info["codes"] == "sq8" and "ivf_sq8.faiss" in FaissBackend().files(info)
    coded = FaissBackend().open(tmp_path, info)
    floats = FaissBackend().open(tmp_path, {k: v for k, v in info.items() if k != "codes"})
    assert coded.ivf.codes is not None and floats.ivf.codes is None
    a_rows, a_sc = coded.search_rows(queries, 10, None)
    b_rows, _ = floats.search_rows(queries, 10, None)
    assert np.allclose(a_sc, np.einsum("qd,qkd->qk", queries, vecs[a_rows]), atol=1e-5)   # exact scores
    same = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(a_rows, b_rows)])
    assert same >= 0.95
    # one query at a time (lists split across cores) answers as the batch does
    one = np.vstack([coded.search_rows(queries[i:i + 1], 10, None)[0] for i in range(len(queries))])
    assert np.array_equal(one, a_rows)
