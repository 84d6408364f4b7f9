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

FLAT_MAX = 200_000
ANN_KINDS = ("auto", "flat", "hnsw")


def choose(n: int, ann: str = "auto") -> str:
    if ann not in ANN_KINDS:
        from rag.errors import RagError

        raise RagError(f"unknown ANN index {ann!r}: use one of {', '.join(ANN_KINDS)}")
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
