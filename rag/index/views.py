"""One commit's segments seen as a single index: live positions 0..n-1 (segment by segment,
deleted rows skipped), and the store, dense and keyword legs over them, so search and cite
use a loaded `Index` as they always have (docs/architecture.md, "The index contract").
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from rag.chunks import Chunk


class LiveMap:
    """Positions of the live rows of each segment: position p is row `live_rows[s][p - base[s]]`
    of segment s; `row2pos[s][row]` is -1 for a deleted row."""

    def __init__(self, rows: list[int], dead: list[np.ndarray]) -> None:
        self.live_rows: list[np.ndarray] = []
        self.row2pos: list[np.ndarray] = []
        self.dead: list[np.ndarray | None] = []
        base = 0
        bases = []
        for n, d in zip(rows, dead):
            alive = np.ones(n, dtype=bool)
            if len(d):
                alive[d] = False
            lr = np.flatnonzero(alive).astype(np.int64)
            r2p = np.full(n, -1, dtype=np.int64)
            r2p[lr] = np.arange(base, base + len(lr), dtype=np.int64)
            self.live_rows.append(lr)
            self.row2pos.append(r2p)
            self.dead.append(np.asarray(d, dtype=np.int64) if len(d) else None)
            bases.append(base)
            base += len(lr)
        self.base = np.asarray(bases + [base], dtype=np.int64)
        self.size = base

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(segment, row) of each position."""
        p = np.asarray(positions, dtype=np.int64)
        seg = np.searchsorted(self.base, p, side="right") - 1
        rows = np.empty(len(p), dtype=np.int64)
        for s in np.unique(seg):
            m = seg == s
            rows[m] = self.live_rows[s][p[m] - self.base[s]]
        return seg, rows

    def positions(self, s: int, rows: Iterable[int]) -> list[int]:
        """Live positions of rows of segment s, deleted rows dropped."""
        r = np.asarray(list(rows), dtype=np.int64)
        if not len(r):
            return []
        p = self.row2pos[s][r]
        return p[p >= 0].tolist()


class SegmentedStore:
    """The chunk store of a commit (same methods as rag.index.store.Store)."""

    def __init__(self, segments, live: LiveMap, file_segment: dict[str, str], files: dict[str, str],
                 encodings: dict[str, str]) -> None:
        self.segments = segments
        self.live = live
        self._by_name = {s.name: i for i, s in enumerate(segments)}
        self.file_segment = file_segment
        self._files = files
        self._encodings = encodings

    def _seg_of(self, source: str):
        name = self.file_segment.get(source)
        return None if name is None else self.segments[self._by_name[name]]

    def count(self) -> int:
        return self.live.size

    def chunks(self, positions: Iterable[int]) -> list[Chunk]:
        pos = np.asarray([int(p) for p in positions], dtype=np.int64)
        if not len(pos):
            return []
        seg, rows = self.live.locate(pos)
        out: list[Chunk | None] = [None] * len(pos)
        for s in np.unique(seg):
            idx = np.flatnonzero(seg == s)
            for i, c in zip(idx, self.segments[s].store.chunks(rows[idx].tolist())):
                out[i] = c
        return out  # type: ignore[return-value]

    def iter_chunks(self) -> Iterator[tuple[int, Chunk]]:
        for s, seg in enumerate(self.segments):
            r2p = self.live.row2pos[s]
            for row, c in seg.store.iter_chunks():
                if r2p[row] >= 0:
                    yield int(r2p[row]), c

    def positions_where(self, source: str | None = None, article: str | None = None) -> list[int]:
        out: list[int] = []
        for s, seg in enumerate(self.segments):
            out += self.live.positions(s, seg.store.positions_where(source, article))
        return sorted(out)

    def files(self) -> list[tuple[str, str, str]]:
        return [(s, self._files[s], self._encodings.get(s, "utf-8")) for s in sorted(self._files)]

    def file_text(self, source: str) -> str | None:
        seg = self._seg_of(source)
        return None if seg is None else seg.store.file_text(source)

    def file_info(self, source: str) -> dict | None:
        seg = self._seg_of(source)
        return None if seg is None else seg.store.file_info(source)

    def articles(self) -> list[dict]:
        out = []
        for seg in self.segments:
            out += [a for a in seg.store.articles() if self.file_segment.get(a["source"]) == seg.name]
        return sorted(out, key=lambda a: (a["source"], a["article"]))

    def neighbours(self, source: str, start: int, end: int, before: int = 1, after: int = 1) -> list[Chunk]:
        seg = self._seg_of(source)
        return [] if seg is None else seg.store.neighbours(source, start, end, before, after)

    def covering(self, source: str, start: int, end: int) -> list[Chunk]:
        seg = self._seg_of(source)
        return [] if seg is None else seg.store.covering(source, start, end)

    def close(self) -> None:
        for seg in self.segments:
            seg.store.close()


REFINE_MIN = 64     # approximate candidates rescored exactly, at least (small k)


class MultiDense:
    """The dense leg of a commit: each segment searched for its top k live rows (exact
    scores), merged; exact scores and subsets by position."""

    def __init__(self, segments, live: LiveMap) -> None:
        self.parts = [s.dense for s in segments]
        self.live = live
        self.ntotal = live.size

    def _seg_search(self, s: int, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        part, dead = self.parts[s], self.live.dead[s]
        if hasattr(part, "search_rows"):
            return part.search_rows(queries, k, dead)
        # a plug-in DenseIndex: ask for enough rows to fill k after dropping deleted ones
        extra = 0 if dead is None else len(dead)
        rows = part.search(queries, min(part.ntotal, k + extra))
        out_r = np.full((len(queries), k), -1, dtype=np.int64)
        out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for i, r in enumerate(rows):
            r = r[r >= 0]
            if dead is not None:
                r = r[~np.isin(r, dead)]
            r = r[:k]
            out_r[i, :len(r)] = r
            out_s[i, :len(r)] = part.scores(queries[i], r)
        return out_r, out_s

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Top k live positions per query by exact inner product over each segment's
        candidates. Segments with 8-bit codes propose by approximate scores; the best
        `refine` of all segments together are rescored exactly, not each segment's k."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, self.ntotal)
        if k <= 0:
            return np.full((len(q), 0), -1, dtype=np.int64)
        all_p, all_s, approx = [], [], False
        for s in range(len(self.parts)):
            if len(self.live.live_rows[s]) == 0:
                continue
            if hasattr(self.parts[s], "approx_rows"):
                # at least REFINE_MIN by the 8-bit codes, so that a small k is refined from
                # more than k (k=10 straight from the codes: recall@10 0.94 at 100k chunks)
                rows, sc = self.parts[s].approx_rows(q, max(k, REFINE_MIN), self.live.dead[s])
                approx = approx or getattr(self.parts[s].ivf, "codes", None) is not None
            else:
                rows, sc = self._seg_search(s, q, k)
            pos = np.where(rows >= 0, self.live.row2pos[s][np.maximum(rows, 0)], -1)
            all_p.append(pos)
            all_s.append(np.where(pos >= 0, sc, -np.inf))
        P, S = np.hstack(all_p), np.hstack(all_s)
        if approx:
            refine = min(P.shape[1], max(k, REFINE_MIN))
            order = np.argsort(-S, axis=1, kind="stable")[:, :refine]
            P, S = np.take_along_axis(P, order, axis=1), np.take_along_axis(S, order, axis=1)
            for i in range(len(q)):
                ok = np.isfinite(S[i])
                S[i, ok] = self.scores(q[i], P[i, ok])
            # equal exact scores (duplicate passages) by position, as an exact search has them
            order = np.stack([np.lexsort((P[i], -S[i])) for i in range(len(q))])[:, :k]
        else:
            order = np.argsort(-S, axis=1, kind="stable")[:, :k]
        out = np.take_along_axis(P, order, axis=1)
        out[~np.isfinite(np.take_along_axis(S, order, axis=1))] = -1
        return out

    def _by_segment(self, ids: np.ndarray):
        seg, rows = self.live.locate(ids)
        for s in np.unique(seg):
            idx = np.flatnonzero(seg == s)
            yield s, idx, rows[idx]

    def scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        out = np.zeros(len(ids), dtype=np.float32)
        for s, idx, rows in self._by_segment(np.asarray(ids)):
            out[idx] = self.parts[s].scores(query, rows)
        return out

    def search_subset(self, query: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
        ids = np.asarray(ids)
        return ids[np.argsort(-self.scores(query, ids), kind="stable")[:k]]

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        out = None
        for s, idx, rows in self._by_segment(ids):
            v = self.parts[s].vectors(rows)
            if out is None:
                out = np.zeros((len(ids), v.shape[1]), dtype=np.float32)
            out[idx] = v
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    @property
    def matrix(self) -> np.ndarray:
        """Every live vector in position order (a copy: tests and tools, not search)."""
        return self.vectors(np.arange(self.ntotal))
