"""An inverted-file (IVF) index over a memory-mapped vector matrix, for large segments.

Why not FAISS's own IVF or HNSW: both hold every vector in memory (1.5 GB at 1M chunks of
384 floats), and the matrix is already on disk as the exact source of truth. Here the only
things loaded are the centroids and the row order by list (~4 MB at 1M); a query scores the
centroids, reads the rows of the `nprobe` nearest lists from the memory map and ranks them
by their *exact* inner products, so whatever the ANN returns is exactly scored and the
recall loss is only rows of lists not probed (bench/bench_scale.py measures recall@10
against exact search). Centroids are trained with FAISS k-means (spherical) on a sample.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

FILES = ("ivf_centroids.npy", "ivf_offsets.npy", "ivf_rows.npy")
MIN_ROWS = 20_000          # smaller segments are searched exactly (flat)


def n_lists(n: int) -> int:
    return int(max(16, min(4096, round(2 * np.sqrt(n)))))


def n_probe(nlist: int) -> int:
    return int(max(24, nlist // 24))


def build(folder: Path, vectors: np.ndarray, seed: int = 1234) -> dict:
    import faiss

    n, dim = vectors.shape
    nlist = n_lists(n)
    rng = np.random.default_rng(seed)
    sample_n = min(n, nlist * 64)
    sample = np.ascontiguousarray(vectors[np.sort(rng.choice(n, sample_n, replace=False))], dtype=np.float32)
    km = faiss.Kmeans(dim, nlist, niter=12, spherical=True, seed=seed, verbose=False,
                      max_points_per_centroid=64)
    km.train(sample)
    cents = km.centroids.astype(np.float32)
    quant = faiss.IndexFlatIP(dim)
    quant.add(cents)
    assign = np.empty(n, dtype=np.int64)
    step = 65536
    for a in range(0, n, step):
        _, ids = quant.search(np.ascontiguousarray(vectors[a:a + step], dtype=np.float32), 1)
        assign[a:a + step] = ids[:, 0]
    order = np.argsort(assign, kind="stable").astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(assign, minlength=nlist))]).astype(np.int64)
    np.save(folder / FILES[0], cents)
    np.save(folder / FILES[1], offsets)
    np.save(folder / FILES[2], order)
    return {"nlist": nlist, "nprobe": n_probe(nlist)}


class IVF:
    def __init__(self, folder: Path, nprobe: int | None = None) -> None:
        self.centroids = np.load(folder / FILES[0])
        self.offsets = np.load(folder / FILES[1])
        self.rows = np.load(folder / FILES[2], mmap_mode="r")
        self.nprobe = nprobe or n_probe(len(self.centroids))

    def candidates(self, query: np.ndarray) -> np.ndarray:
        """Rows of the lists nearest the query (unsorted)."""
        c = self.centroids @ query
        p = min(self.nprobe, len(c))
        lists = np.argpartition(-c, p - 1)[:p]
        lists.sort()
        parts = [self.rows[self.offsets[i]:self.offsets[i + 1]] for i in lists]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
