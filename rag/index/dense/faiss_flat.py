"""Dense vectors of a segment: the exact float32 matrix (`vectors.npy`, memory-mapped) and,
for large segments, an ANN index over it.

The matrix is the source of truth (updates and merges reuse rows, filtered searches and
fusion score candidates exactly). Index type by segment size (override with `ann=`):
  flat  exact inner product over the memory map, below 20,000 rows (a few ms)
  ivf   inverted lists over the same memory map (rag.index.dense.ivf): nothing but the
        centroids is loaded, candidates are exactly scored; recall in bench/bench_scale.py
  hnsw  FAISS HNSW (M=32, efSearch=128), kept for indexes that ask for it: holds its own
        copy of every vector in memory
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.errors import BadInput

from rag.index.dense import ivf as ivf_mod
from rag.index.rowfile import BULK, RowFile

FLAT_MAX = ivf_mod.MIN_ROWS - 1
ANN_KINDS = ("auto", "flat", "ivf", "hnsw")
FILES = ("vectors.npy",)


def choose(n: int, ann: str = "auto") -> str:
    if ann not in ANN_KINDS:
        raise BadInput(f"unknown ANN index {ann!r}: use one of {', '.join(ANN_KINDS)}")
    kind = ("flat" if n <= FLAT_MAX else "ivf") if ann == "auto" else ann
    return "flat" if kind == "ivf" and n < 256 else kind


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


class SegmentDense:
    """A segment's memory-mapped matrix, searched exactly (flat) or through IVF lists;
    `search_rows` skips deleted rows and returns exact scores."""

    def __init__(self, matrix: np.ndarray, ivf=None, hnsw=None, file=None) -> None:
        # a plain ndarray over the same mapped pages: an np.memmap slice goes through its
        # __getitem__/__array_finalize__, and an IVF query slices once per probed list
        # (~1,000 slices a query at 1M chunks in 8 segments: ~2 ms of 40; bench_scale)
        self.matrix = np.asarray(matrix) if isinstance(matrix, np.memmap) else matrix
        self.ivf = ivf
        self.faiss = hnsw
        self.file = file            # rag.index.rowfile.RowFile of the same vectors.npy
        self.ntotal = int(matrix.shape[0])
        if hnsw is not None and hnsw.ntotal != self.ntotal:
            raise ValueError(f"vectors.npy has {self.ntotal} rows, vectors.faiss {hnsw.ntotal}")

    def search_rows(self, queries: np.ndarray, k: int, dead: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, exact scores) of the top k live rows per query, -1 / -inf where fewer."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        nq = len(q)
        out_r = np.full((nq, k), -1, dtype=np.int64)
        out_s = np.full((nq, k), -np.inf, dtype=np.float32)
        if self.ntotal == 0 or k == 0:
            return out_r, out_s
        if self.ivf is None and self.faiss is None:
            for a in range(0, nq, 64):
                sc = np.asarray(self.matrix @ q[a:a + 64].T, dtype=np.float32).T    # [b, rows]
                if dead is not None:
                    sc[:, dead] = -np.inf
                kk = min(k, self.ntotal)
                top = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
                ts = np.take_along_axis(sc, top, axis=1)
                o = np.argsort(-ts, axis=1, kind="stable")
                out_r[a:a + len(sc), :kk] = np.take_along_axis(top, o, axis=1)
                out_s[a:a + len(sc), :kk] = np.take_along_axis(ts, o, axis=1)
            out_r[~np.isfinite(out_s)] = -1
            return out_r, out_s
        if self.ivf is not None and self.ivf.codes is not None:
            return self._search_codes(q, k, dead, out_r, out_s)
        if self.ivf is not None and self.ivf.ordered:
            return self._search_ordered(q, k, dead, out_r, out_s)
        for i in range(nq):
            if self.ivf is not None:
                rows = self.ivf.candidates(q[i])
            else:
                ndead = 0 if dead is None else int(len(dead))
                _, ids = self.faiss.search(q[i:i + 1], min(self.ntotal, k + ndead))
                rows = ids[0][ids[0] >= 0]
            if dead is not None and len(dead) and len(rows):
                rows = rows[~np.isin(rows, dead)]
            if not len(rows):
                continue
            rows = np.sort(rows)
            sc = np.asarray(self.matrix[rows] @ q[i], dtype=np.float32)
            kk = min(k, len(rows))
            top = np.argpartition(-sc, kk - 1)[:kk]
            top = top[np.argsort(-sc[top], kind="stable")]
            out_r[i, :kk], out_s[i, :kk] = rows[top], sc[top]
        return out_r, out_s

    def approx_rows(self, queries: np.ndarray, k: int, dead: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Like search_rows, but a segment with codes returns its candidates' 8-bit scores
        unrefined, so a caller merging several segments rescores only the overall best
        (rag.index.views.MultiDense: ~2 of 8 segments' worth of rows read at 1M chunks)."""
        if self.ivf is None or self.ivf.codes is None:
            return self.search_rows(queries, k, dead)
        q = np.ascontiguousarray(queries, dtype=np.float32)
        kk = int(min(k, self.ntotal))
        scores, slots = self.ivf.scan(q, kk, dead, with_scores=True)
        rows = np.where(slots >= 0, self.ivf.rows[np.maximum(slots, 0)], -1)
        return rows, np.where(slots >= 0, scores, -np.inf).astype(np.float32)

    def _search_codes(self, q: np.ndarray, k: int, dead, out_r, out_s):
        """IVF-SQ8 candidates (deleted rows skipped by FAISS), rescored exactly from the
        float32 matrix; ties by row, as the exact search breaks them."""
        ivf = self.ivf
        slots_all = ivf.scan(q, k, dead)
        for i in range(len(q)):
            slots = np.sort(slots_all[i][slots_all[i] >= 0])
            if not len(slots):
                continue
            sc = np.asarray(self._read(slots) @ q[i], dtype=np.float32)
            rows = ivf.rows[slots]
            kk = min(k, len(rows))
            top = np.argpartition(-sc, kk - 1)[:kk]
            top = top[np.lexsort((rows[top], -sc[top]))]
            out_r[i, :kk], out_s[i, :kk] = rows[top], sc[top]
        return out_r, out_s

    def _search_ordered(self, q: np.ndarray, k: int, dead, out_r, out_s):
        """IVF over a matrix in list order: each probed range scored in place (no gather)."""
        ivf = self.ivf
        for i in range(len(q)):
            ranges = ivf.nearest(q[i])
            if not ranges:
                continue
            sc = np.concatenate([np.asarray(self.matrix[a:b] @ q[i], dtype=np.float32) for a, b in ranges])
            rows = np.concatenate([ivf.rows[a:b] for a, b in ranges])
            if dead is not None and len(dead):
                keep = ~np.isin(rows, dead)
                rows, sc = rows[keep], sc[keep]
            if not len(rows):
                continue
            kk = min(k, len(rows))
            top = np.argpartition(-sc, kk - 1)[:kk]
            # ties by row, as the row-ordered search breaks them
            top = top[np.lexsort((rows[top], -sc[top]))]
            out_r[i, :kk], out_s[i, :kk] = rows[top], sc[top]
        return out_r, out_s

    def _read(self, slots: np.ndarray) -> np.ndarray:
        """Stored rows by slot: a query's few rows by pread (rag.index.rowfile: they do not
        stay in the process's memory), bulk reads from the memory map."""
        if self.file is not None and len(slots) <= BULK:
            return self.file.rows(slots)
        return np.asarray(self.matrix[slots], dtype=np.float32)

    def _slots(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        return ids if self.ivf is None or self.ivf.slot is None else self.ivf.slot[ids]

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        return self.search_rows(queries, min(k, self.ntotal), None)[0]

    def scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return np.asarray(self._read(self._slots(ids)) @ query, dtype=np.float32)

    def search_subset(self, query: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
        return ids[np.argsort(-self.scores(query, ids), kind="stable")[:k]]

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return self._read(self._slots(ids))


class FaissBackend:
    """The embedded default: a memory-mapped float32 matrix per segment, searched exactly
    below 20,000 rows and through IVF lists (or FAISS HNSW, on request) above."""
    name = "faiss"

    def files(self, info: dict) -> tuple[str, ...]:
        kind = info.get("ann", "flat")
        if kind == "ivf":
            return FILES + ivf_mod.FILES + ((ivf_mod.CODES,) if info.get("codes") else ())
        return FILES + (("vectors.faiss",) if kind == "hnsw" else ())

    def build(self, folder: Path, vectors: np.ndarray, options: dict) -> dict:
        kind = choose(len(vectors), options.get("ann", "auto"))
        info: dict = {"ann": kind}
        if kind == "ivf":
            info.update(ivf_mod.build(folder, vectors))
            order = info.pop("order")          # rows stored in list order (rag.index.dense.ivf)
            np.save(folder / "vectors.npy", np.ascontiguousarray(vectors[order], dtype=np.float32))
            return info
        np.save(folder / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))
        if kind == "hnsw":
            save(build(vectors, kind), folder / "vectors.faiss")
        return info

    def open(self, folder: Path, info: dict) -> SegmentDense:
        matrix = np.load(folder / "vectors.npy", mmap_mode="r")
        file = RowFile(folder / "vectors.npy")
        kind = info.get("ann", "flat")
        if kind == "ivf":
            return SegmentDense(matrix, ivf=ivf_mod.IVF(folder, info.get("nprobe"), bool(info.get("ordered")),
                                                        codes=bool(info.get("codes"))), file=file)
        if kind == "hnsw":
            return SegmentDense(matrix, hnsw=load(folder / "vectors.faiss"), file=file)
        return SegmentDense(matrix, file=file)
