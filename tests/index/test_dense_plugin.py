"""The dense-backend plug-in point end to end: a registered backend builds and serves an index
chosen by RAG_DENSE_BACKEND, the manifest records it, and search ranks as with FAISS."""
from __future__ import annotations

import numpy as np

from conftest import TINY_DOCS, TINY_EMBEDDER, write_corpus
from rag import settings
from rag.index import build, load, read_manifest
from rag.index.dense import BACKENDS
from rag.index.dense.faiss_flat import FaissDense
from rag.search import Searcher


class ExactNumpyBackend:
    """The docs/architecture.md example: vectors in one .npy, exact inner product."""
    name = "test-numpy"
    opened = 0

    def files(self, info):
        return ("exact.npy",)

    def build(self, folder, vectors, options):
        np.save(folder / "exact.npy", vectors)
        return {"rows": int(len(vectors))}

    def open(self, folder, info):
        import faiss

        type(self).opened += 1
        m = np.load(folder / "exact.npy", mmap_mode="r")
        flat = faiss.IndexFlatIP(m.shape[1])
        if len(m):
            flat.add(np.ascontiguousarray(m, dtype=np.float32))
        return FaissDense(m, flat)


def test_a_registered_dense_backend_builds_and_serves(tmp_path, monkeypatch):
    BACKENDS.register("test-numpy", ExactNumpyBackend())
    try:
        corpus = write_corpus(tmp_path / "corpus", TINY_DOCS)
        monkeypatch.setenv("RAG_DENSE_BACKEND", "test-numpy")
        settings.get.cache_clear()
        build(corpus, tmp_path / "plug", embedder=TINY_EMBEDDER)
        monkeypatch.delenv("RAG_DENSE_BACKEND")
        settings.get.cache_clear()
        build(corpus, tmp_path / "faiss", embedder=TINY_EMBEDDER)
        assert read_manifest(tmp_path / "plug")["backends"]["dense"] == "test-numpy"
        assert list((tmp_path / "plug").rglob("exact.npy"))
        ExactNumpyBackend.opened = 0
        plug, ref = Searcher(load(tmp_path / "plug")), Searcher(load(tmp_path / "faiss"))
        assert ExactNumpyBackend.opened >= 1                  # the recorded backend opened it
        for q in ("大熊猫", "山区民警骑马巡逻"):
            a, b = plug.search(q, k=3), ref.search(q, k=3)
            assert [(r.source, r.start) for r in a] == [(r.source, r.start) for r in b]
    finally:
        BACKENDS._items.pop("test-numpy", None)
