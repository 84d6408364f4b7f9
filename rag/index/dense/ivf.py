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
    """An eighth of the lists. A tenth gave recall@10 against exact 0.958 at 100k stand-in
    vectors in one segment (1/24 0.864; 1/6 0.983 at twice the time), but 0.913 over two
    segments of 50k (1/7: 0.956, 2.5 ms; 1/5: 0.986, 3.1 ms a query), and a streamed build
    writes segments of RAG_FLUSH_CHUNKS (bench_scale)."""
    return int(max(24, nlist // 8))


def build(folder: Path, vectors: np.ndarray, seed: int = 1234) -> dict:
    """Train the lists and write them; returns the info, with "order": the row order by
    list, in which the caller stores the matrix ("ordered": rows of a list contiguous, so
    a probed list is scored straight from the memory map without gathering rows)."""
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
    return {"nlist": nlist, "nprobe": n_probe(nlist), "ordered": True, "order": order}


class IVF:
    """The lists of a segment. `ordered`: its matrix stores rows in list order (slot s holds
    row `rows[s]`; `slot[row]` the inverse), so the nearest lists are contiguous ranges.
    The row order (4 bytes a row) is read into memory: slicing a memory map list by list
    cost ~30 us a list, more than scoring it."""

    def __init__(self, folder: Path, nprobe: int | None = None, ordered: bool = False) -> None:
        self.centroids = np.load(folder / FILES[0])
        self.offsets = np.load(folder / FILES[1])
        self.rows = np.asarray(np.load(folder / FILES[2], mmap_mode="r"), dtype=np.int64)
        self.nprobe = nprobe or n_probe(len(self.centroids))
        self.ordered = ordered
        self.slot = None
        if ordered:
            self.slot = np.empty(len(self.rows), dtype=np.int64)
            self.slot[self.rows] = np.arange(len(self.rows), dtype=np.int64)

    def nearest(self, query: np.ndarray) -> list[tuple[int, int]]:
        """Slot ranges [a, b) of the lists nearest the query, adjacent ones joined."""
        c = self.centroids @ query
        p = min(self.nprobe, len(c))
        lists = np.sort(np.argpartition(-c, p - 1)[:p])
        out: list[tuple[int, int]] = []
        for i in lists.tolist():
            a, b = int(self.offsets[i]), int(self.offsets[i + 1])
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            elif b > a:
                out.append((a, b))
        return out

    def candidates(self, query: np.ndarray) -> np.ndarray:
        """Rows of the lists nearest the query (unsorted)."""
        parts = [self.rows[a:b] for a, b in self.nearest(query)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
