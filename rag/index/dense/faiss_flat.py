"""Dense vectors on disk: the exact float32 matrix (`vectors.npy`) and a FAISS index.

The matrix is the source of truth (incremental builds reuse rows of unchanged chunks, and
filtered searches score a subset exactly); the FAISS index answers unfiltered top-k.
Index type by corpus size (override with `ann=`):
  flat  exact inner product, up to 200,000 vectors (brute force stays under ~20 ms here)
  hnsw  HNSW graph (M=32, efSearch=128) above that: sub-linear, ~0.98 recall@10
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.errors import BadInput

FLAT_MAX = 200_000
ANN_KINDS = ("auto", "flat", "hnsw")
FILES = ("vectors.npy", "vectors.faiss")


def choose(n: int, ann: str = "auto") -> str:
    if ann not in ANN_KINDS:
        raise BadInput(f"unknown ANN index {ann!r}: use one of {', '.join(ANN_KINDS)}")
    return ("flat" if n <= FLAT_MAX else "hnsw") if ann == "auto" else ann


def build(vectors: np.ndarray, kind: str):
    import faiss

    dim = vectors.shape[1]
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def save(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def load(path: Path):
    import faiss

    index = faiss.read_index(str(path))
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = 128
    return index


class FaissDense:
    """A memory-mapped matrix for exact scores plus a FAISS index for top-k."""

    def __init__(self, matrix: np.ndarray, index) -> None:
        self.matrix = matrix
        self.faiss = index
        self.ntotal = int(index.ntotal)
        if matrix.shape[0] != self.ntotal:
            raise ValueError(f"vectors.npy has {matrix.shape[0]} rows, vectors.faiss {self.ntotal}")

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        _, ids = self.faiss.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, self.ntotal))
        return ids

    def scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return np.asarray(self.matrix[ids] @ query, dtype=np.float32)

    def search_subset(self, query: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
        return ids[np.argsort(-self.scores(query, ids))[:k]]

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray(self.matrix[ids], dtype=np.float32)


class FaissBackend:
    """The embedded default: FAISS flat or HNSW over a float32 matrix in the generation."""
    name = "faiss"

    def files(self, info: dict) -> tuple[str, ...]:
        return FILES

    def build(self, folder: Path, vectors: np.ndarray, options: dict) -> dict:
        np.save(folder / "vectors.npy", vectors)
        kind = choose(len(vectors), options.get("ann", "auto"))
        save(build(vectors, kind), folder / "vectors.faiss")
        return {"ann": kind}

    def open(self, folder: Path, info: dict) -> FaissDense:
        return FaissDense(np.load(folder / "vectors.npy", mmap_mode="r"), load(folder / "vectors.faiss"))
