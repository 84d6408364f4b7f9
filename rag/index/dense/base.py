"""The dense-vector plug-in point: a backend builds its files into a generation folder and
opens them as a `DenseIndex`. Search calls only this interface (no FAISS, no matrix).

Register a backend with `rag.index.dense.BACKENDS.register(name, backend)` or through the
`rag.backends` entry-point group; the manifest records the backend that built an index,
so later commands open it with the same one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class DenseIndex(Protocol):
    ntotal: int

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Ids of the (approximately) k nearest rows by inner product, -1 where fewer."""
        ...

    def scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact inner products of one query with the given rows (fusion rescoring)."""
        ...

    def search_subset(self, query: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
        """Exact top-k within the given rows (filters that select few chunks)."""
        ...

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """Stored rows (an update reuses the vectors of unchanged chunks)."""
        ...


@runtime_checkable
class DenseBackend(Protocol):
    name: str

    def files(self, info: dict) -> tuple[str, ...]:
        """Data files this backend wrote into a generation (checked by `rag check`)."""
        ...

    def build(self, folder: Path, vectors: np.ndarray, options: dict) -> dict:
        """Write the index of `vectors` (row i = chunk position i); returns manifest info."""
        ...

    def open(self, folder: Path, info: dict) -> DenseIndex: ...
