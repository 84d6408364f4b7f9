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
CODES = "ivf_sq8.faiss"       # the same lists as 8-bit codes (FAISS IVF-SQ8), memory-mapped
MIN_ROWS = 20_000          # smaller segments are searched exactly (flat)


def n_lists(n: int) -> int:
    return int(max(16, min(8192, round(4 * np.sqrt(n)))))


def n_probe(nlist: int) -> int:
    """A sixteenth of 4*sqrt(n) lists. Measured on a 100k segment of bench_scale vectors
    (recall@10 against exact, one core): 2*sqrt(n) lists probed 1/8 gave 0.979 in 3.0 ms,
    4*sqrt(n) probed 1/16 0.974 in 1.4 ms (half the rows scanned for the same recall),
    1/12 0.981 in 1.6 ms; 8*sqrt(n) 1/24 0.967 in 1.1 ms but three times the training."""
    return int(max(32, nlist // 16))


def build(folder: Path, vectors: np.ndarray, seed: int = 1234) -> dict:
    """Train the lists and write them; returns the info, with "order": the row order by
    list, in which the caller stores the matrix ("ordered": rows of a list contiguous, so
    a probed list is scored straight from the memory map without gathering rows)."""
    import faiss

    n, dim = vectors.shape
    nlist = n_lists(n)
    rng = np.random.default_rng(seed)
    # k-means on 32 points a list, 8 rounds: training is the largest part of writing a
    # large segment (9.6 s of 20 at 292k rows with 10 rounds; redone by every merge)
    sample_n = min(n, nlist * 32)
    sample = np.ascontiguousarray(vectors[np.sort(rng.choice(n, sample_n, replace=False))], dtype=np.float32)
    km = faiss.Kmeans(dim, nlist, niter=8, spherical=True, seed=seed, verbose=False,
                      max_points_per_centroid=32, min_points_per_centroid=8)
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
    _build_codes(folder / CODES, quant, vectors, order, assign, sample)
    return {"nlist": nlist, "nprobe": n_probe(nlist), "ordered": True, "codes": "sq8", "order": order}


def _build_codes(path: Path, quant, vectors: np.ndarray, order: np.ndarray, assign: np.ndarray,
                 sample: np.ndarray) -> None:
    """FAISS IVF-SQ8 over the same centroids, ids = slots of the list-ordered matrix.
    Why: scanning the probed lists as float32 from the matrix read ~190 MB a query at 1M
    chunks (an eighth of 1.5 GB), so every query touched new pages of the map (a query
    process grew to 3.1 GB) and the scan was most of the 41-48 ms; the 8-bit codes are a
    quarter of that, scanned by FAISS's SIMD kernels, and only the best k candidates
    (asking for 2k or 3k gave the same recall@10 at 100k) are read from the float32 matrix and scored exactly."""
    import faiss

    dim = vectors.shape[1]
    codes = faiss.IndexIVFScalarQuantizer(quant, dim, quant.ntotal, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT, False)
    codes.train(sample)                  # the quantizer is already trained: only the SQ ranges
    step = 65536
    for a in range(0, len(order), step):
        slots = np.arange(a, min(a + step, len(order)), dtype=np.int64)
        x = np.ascontiguousarray(vectors[order[slots]], dtype=np.float32)
        lists = np.ascontiguousarray(assign[order[slots]], dtype=np.int64)
        # the lists are already known: no second assignment against every centroid
        codes.add_core(len(x), faiss.swig_ptr(x), faiss.swig_ptr(slots), faiss.swig_ptr(lists))
    faiss.write_index(codes, str(path))


class IVF:
    """The lists of a segment. `ordered`: its matrix stores rows in list order (slot s holds
    row `rows[s]`; `slot[row]` the inverse), so the nearest lists are contiguous ranges.
    The row order (4 bytes a row) is read into memory: slicing a memory map list by list
    cost ~30 us a list, more than scoring it."""

    def __init__(self, folder: Path, nprobe: int | None = None, ordered: bool = False,
                 codes: bool = False) -> None:
        self.centroids = np.load(folder / FILES[0])
        self.offsets = np.load(folder / FILES[1])
        self.rows = np.asarray(np.load(folder / FILES[2], mmap_mode="r"), dtype=np.int64)
        self.nprobe = nprobe or n_probe(len(self.centroids))
        self.ordered = ordered
        self.slot = None
        if ordered:
            self.slot = np.empty(len(self.rows), dtype=np.int64)
            self.slot[self.rows] = np.arange(len(self.rows), dtype=np.int64)
        self.codes = None
        if codes:
            import faiss

            # IO_FLAG_MMAP_IFC: the codes stay in the file's pages (reclaimable), not copied
            self.codes = faiss.read_index(str(folder / CODES), faiss.IO_FLAG_MMAP_IFC)
            # one query's probed lists are split across the cores (parallel_mode 1 in
            # scan): 1.5 vs 2.9 ms a query for a segment of 100k on 2 cores
        self._params: tuple[object, object] | None = None    # (dead rows, SearchParameters)

    def params(self, dead: np.ndarray | None) -> tuple:
        """(FAISS search parameters: nprobe and a selector that skips deleted rows, the C++
        objects they point to). Cached for the commit's deleted-rows array (one commit, one
        array object); the caller holds the tuple while it searches, so the selector the
        parameters point to cannot be freed under it."""
        import faiss

        cached = self._params
        if cached is not None and cached[0] is dead:
            return cached[1]
        p = faiss.SearchParametersIVF()
        p.nprobe = self.nprobe
        keep: tuple = (p,)
        if dead is not None and len(dead):
            batch = faiss.IDSelectorBatch(np.ascontiguousarray(self.slot[dead], dtype=np.int64))
            sel = faiss.IDSelectorNot(batch)
            p.sel = sel
            keep = (p, batch, sel)
        self._params = (dead, keep)
        return keep

    def scan(self, q: np.ndarray, k: int, dead: np.ndarray | None, with_scores: bool = False):
        """Slots of the k best rows by their 8-bit codes, per query (-1 where fewer);
        with_scores: (their approximate inner products, slots)."""
        kk = int(min(len(self.rows), k))
        self.codes.parallel_mode = 1 if len(q) == 1 else 0   # a batch splits by query
        keep = self.params(dead)
        scores, ids = self.codes.search(q, kk, params=keep[0])
        return (scores, ids) if with_scores else ids

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
