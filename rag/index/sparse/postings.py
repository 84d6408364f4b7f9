"""BM25 over segments: per-segment term postings on disk (memory-mapped), corpus-wide
statistics at query time, so a chunk's score never depends on the segment it sits in.

A segment's keyword leg is a term-major sparse matrix of term frequencies (CSC: `terms`
sorted, `indptr` per term, `rows` and `tf` per posting) plus each row's length. Scores
follow bm25s's Lucene variant (k1=1.2, b=0.75, idf = log(1 + (N - df + 0.5)/(df + 0.5)))
with N, df and the average length counted over the *live* chunks of every segment of the
commit: an update and a full rebuild of the same corpus score every chunk alike (tested).
A chunk with no tokens has length 1, as bm25s indexed it.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from rag.index.rowfile import RowFile

K1, B = 1.2, 0.75
DIR = "bm25"
FILES = tuple(f"{DIR}/{n}" for n in ("terms.txt", "indptr.npy", "rows.npy", "tf.npy", "doclen.npy"))


def batch_arrays(corpus_tokens: Sequence[list[str]]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(terms, term id, row, tf, doclen) of a batch of token lists (row i = corpus_tokens[i]):
    compact arrays, so a build never holds every chunk's token list (~9 KB a chunk as str
    objects: 5 GB at 300k chunks)."""
    from collections import Counter

    vocab: dict[str, int] = {}
    t_ids: list[np.ndarray] = []
    t_rows: list[np.ndarray] = []
    t_tf: list[np.ndarray] = []
    doclen = np.zeros(len(corpus_tokens), dtype=np.int32)
    for row, toks in enumerate(corpus_tokens):
        doclen[row] = max(len(toks), 1)
        if not toks:
            continue
        cnt = Counter(toks)
        t_ids.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in cnt), dtype=np.int32, count=len(cnt)))
        t_tf.append(np.fromiter(cnt.values(), dtype=np.float32, count=len(cnt)))
        t_rows.append(np.full(len(cnt), row, dtype=np.int32))
    return (list(vocab), np.concatenate(t_ids) if t_ids else np.zeros(0, np.int32),
            np.concatenate(t_rows) if t_rows else np.zeros(0, np.int32),
            np.concatenate(t_tf) if t_tf else np.zeros(0, np.float32), doclen)


class PostingsBuilder:
    """A segment's postings gathered batch by batch (batch_arrays of consecutive rows)."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.doclen: list[np.ndarray] = []
        self.n = 0

    def add(self, batch: tuple) -> None:
        terms, tid, rows, tf, doclen = batch
        remap = np.fromiter((self.vocab.setdefault(t, len(self.vocab)) for t in terms), dtype=np.int64,
                            count=len(terms))
        self.parts.append((remap[tid] if len(tid) else np.zeros(0, np.int64), rows.astype(np.int32) + self.n, tf))
        self.doclen.append(doclen)
        self.n += len(doclen)

    def add_tokens(self, corpus_tokens: Sequence[list[str]]) -> None:
        self.add(batch_arrays(corpus_tokens))

    def arrays(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """write_arrays' arguments."""
        if not self.parts:
            return [], np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.int32)
        return (list(self.vocab), np.concatenate([p[0] for p in self.parts]),
                np.concatenate([p[1] for p in self.parts]), np.concatenate([p[2] for p in self.parts]),
                np.concatenate(self.doclen))


def write(folder: Path, corpus_tokens: Sequence[list[str]]) -> dict:
    """Write the term postings of one segment (row i = corpus_tokens[i])."""
    terms, tid, rows, tf, doclen = batch_arrays(corpus_tokens)
    return write_arrays(folder, terms, tid.astype(np.int64), rows, tf, doclen)


def write_arrays(folder: Path, terms: list[str], term_ids: np.ndarray, rows: np.ndarray,
                 tf: np.ndarray, doclen: np.ndarray) -> dict:
    """Write postings given as (term id, row, tf) triples over `terms` (any order)."""
    d = folder / DIR
    d.mkdir(parents=True, exist_ok=True)
    order_terms = sorted(range(len(terms)), key=terms.__getitem__)
    rank = np.empty(len(terms), dtype=np.int64)
    rank[np.asarray(order_terms, dtype=np.int64)] = np.arange(len(terms), dtype=np.int64)
    tid = rank[term_ids] if len(term_ids) else term_ids
    order = np.lexsort((rows, tid))
    counts = np.bincount(tid, minlength=len(terms)) if len(tid) else np.zeros(len(terms), np.int64)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    (d / "terms.txt").write_text("\n".join(terms[i] for i in order_terms), encoding="utf-8")
    np.save(d / "indptr.npy", indptr)
    np.save(d / "rows.npy", rows[order].astype(np.int32))
    np.save(d / "tf.npy", tf[order].astype(np.float32))
    np.save(d / "doclen.npy", doclen.astype(np.int32))
    return {"k1": K1, "b": B, "docs": int(len(doclen)), "terms": len(terms)}


class SegmentPostings:
    """One segment's postings, memory-mapped; the vocabulary as a dict (term -> id)."""

    def __init__(self, folder: Path) -> None:
        d = folder / DIR
        text = (d / "terms.txt").read_text(encoding="utf-8")
        terms = text.split("\n") if text else []
        self.terms = terms
        self.vocab = {t: i for i, t in enumerate(terms)}
        self.indptr = np.load(d / "indptr.npy", mmap_mode="r")
        self.rows = np.load(d / "rows.npy", mmap_mode="r")
        self.tf = np.load(d / "tf.npy", mmap_mode="r")
        # a query's postings by pread (rag.index.rowfile): read through the memory maps, the
        # postings of every term ever queried stayed resident in the process
        self._rows_file, self._tf_file = RowFile(d / "rows.npy"), RowFile(d / "tf.npy")
        self.doclen = np.load(d / "doclen.npy", mmap_mode="r")
        if len(self.indptr) != len(terms) + 1 or self.indptr[-1] != len(self.rows) != len(self.tf):
            raise ValueError("bm25 postings disagree with their terms")

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        i = self.vocab.get(term)
        if i is None:
            return None
        a, b = int(self.indptr[i]), int(self.indptr[i + 1])
        return self._rows_file.slice(a, b), self._tf_file.slice(a, b)

    def triples(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(terms, term id, row, tf) of every posting (merges)."""
        counts = np.diff(np.asarray(self.indptr))
        tid = np.repeat(np.arange(len(self.terms), dtype=np.int64), counts)
        return self.terms, tid, np.asarray(self.rows), np.asarray(self.tf)


class CorpusBM25:
    """The keyword leg as search sees it, over the live chunks of every segment of a commit:
    `scores(terms)` over all live positions, `idf`, `knows`, `ntotal`."""

    def __init__(self, segments: list[SegmentPostings], live) -> None:
        self.segments = segments
        self.live = live                  # rag.index.views.LiveMap
        self.ntotal = int(live.size)
        total = 0
        for seg, rows in zip(segments, live.live_rows):
            total += int(np.asarray(seg.doclen)[rows].sum()) if len(rows) != len(seg.doclen) \
                else int(np.asarray(seg.doclen).sum())
        self.avgdl = total / self.ntotal if self.ntotal else 1.0
        self._norm: list[np.ndarray | None] = [None] * len(segments)
        self._scratch: np.ndarray | None = None
        self._scratch_lock = threading.Lock()
        self._df: dict[str, int] = {}        # term -> live df (a commit never changes)

    def _lengths(self, s: int) -> np.ndarray:
        """k1 * (1 - b + b * dl / avgdl) per row of segment s (cached: it depends on the commit)."""
        n = self._norm[s]
        if n is None:
            dl = np.asarray(self.segments[s].doclen, dtype=np.float64)
            n = self._norm[s] = (K1 * (1 - B + B * dl / self.avgdl)).astype(np.float32)
        return n

    def _live_postings(self, term: str) -> list[tuple[int, np.ndarray, np.ndarray]]:
        out = []
        for s, seg in enumerate(self.segments):
            p = seg.postings(term) if term else None
            if p is None or len(p[0]) == 0:
                continue
            rows, tf = p
            dead = getattr(self.live, "dead", None)
            if dead is not None and dead[s] is None:      # no deletions: positions are rows + base
                pos = np.asarray(rows, dtype=np.int64) + int(self.live.base[s])
            else:
                pos = self.live.row2pos[s][rows]
                keep = pos >= 0
                if not keep.all():
                    rows, tf, pos = rows[keep], tf[keep], pos[keep]
            if len(pos):
                out.append((s, np.asarray(rows), np.asarray(tf), pos))
        return out

    def df(self, term: str) -> int:
        """Live document frequency, remembered: ranking asks for it again (idf weights of
        the best sentence, cross-lingual `knows`) after scoring read the postings."""
        df = self._df.get(term)
        if df is None:
            df = self._remember(term, sum(len(p[3]) for p in self._live_postings(term)))
        return df

    def _remember(self, term: str, df: int) -> int:
        if len(self._df) >= 200_000:
            self._df.clear()
        self._df[term] = df
        return df

    def _idf(self, df: int) -> float:
        return float(np.log(1 + (self.ntotal - df + 0.5) / (df + 0.5)))

    def scores(self, terms: list[str]) -> np.ndarray:
        out = np.zeros(self.ntotal, dtype=np.float32)
        self._accumulate(out, terms)
        return out

    def _accumulate(self, buf: np.ndarray, terms: list[str]) -> None:
        """Add each distinct term's BM25 contribution to `buf` (indexed by live position)."""
        for t in dict.fromkeys(terms):
            parts = self._live_postings(t)
            df = self._remember(t, sum(len(p[3]) for p in parts))
            if not df:
                continue
            idf = self._idf(df)
            for s, rows, tf, pos in parts:
                buf[pos] += (idf * tf / (tf + self._lengths(s)[rows])).astype(np.float32)

    def sparse_scores(self, terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The BM25 scores of `terms` as (sorted positions of the chunks that match any term,
        their scores): equal to scores(terms) at those positions (the same float32 additions
        in the same term order into a zeroed array) and 0 elsewhere. The array is one
        scratch buffer per index, reset at the matched positions after each query, so a query
        allocates its matches, not an index-length array and the copies a top-k over it made
        (a sort-based merge of the postings cost 4.7 ms a query at 100k chunks, this 0.3)."""
        with self._scratch_lock:
            buf = self._scratch
            if buf is None:
                buf = self._scratch = np.zeros(self.ntotal, dtype=np.float32)
            self._accumulate(buf, terms)
            # via a boolean mask: flatnonzero of the float array itself took 7.6 ms at 1M
            # chunks with 150k matches, of the mask 2.3 ms
            hit = np.flatnonzero(buf != 0)
            sc = buf[hit]
            buf[hit] = 0
        return hit, sc

    def idf(self, terms: list[str]) -> dict[str, float]:
        out = {}
        for t in terms:
            df = self.df(t)
            if df:
                out[t] = self._idf(df)
        return out

    def knows(self, term: str) -> bool:
        return bool(term) and self.df(term) > 0
