"""Hybrid search: dense (FAISS) and BM25 (jieba) candidates, fused by normalised scores.

Fusion (chosen by measurement, see README "Ranking"): each leg proposes its top
`candidates` chunks; for the union, both scores are computed exactly (no leg is missing a
score), each is min-max normalised over the union, and the final score is
`alpha * dense + (1 - alpha) * bm25`. Unlike reciprocal-rank fusion this keeps the size of
the gaps: a passage that BM25 ranks first by a wide margin stays first.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np

from rag.chunks import Chunk, Citation
from rag.chunks.cleaning import clean_map
from rag.embed import Embedder, get_embedder, same_vectors
from rag.errors import IndexMismatch
from rag.index import Index
from rag.index.sparse.crosslingual import is_english, translate
from rag.index.sparse.tokenizer import normalize
from rag.search.inputs import check_k, clean_query
_SENT = re.compile(r"[^。！？；!?;\n]+[。！？；!?;]*[”’」』）)】》]*")


@dataclass(frozen=True)
class Fusion:
    alpha: float = 0.5           # weight of the dense leg after normalisation
    candidates: int = 100        # per leg


@dataclass(kw_only=True)
class Result(Citation):
    """A ranked passage: the citation record plus how it ranked and why."""
    rank: int
    score: float
    id: str
    matched: list[str] = field(default_factory=list)
    best_sentence: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready copy (fields are flat values, lists and dicts of scalars;
        dataclasses.asdict's recursive deep copy cost more than ranking the query)."""
        return {f.name: _copy(getattr(self, f.name)) for f in _RESULT_FIELDS}


def _copy(value):
    return value.copy() if isinstance(value, (list, dict)) else value


# rank and score first, as `rag query --json` has always printed them
_RESULT_FIELDS = sorted(fields(Result), key=lambda f: (f.name not in ("rank", "score"), f.name != "rank"))


def minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def fuse(dense: np.ndarray, sparse: np.ndarray, alpha: float) -> np.ndarray:
    """Fused scores of candidates from their exact dense and BM25 scores."""
    return alpha * minmax(dense) + (1 - alpha) * minmax(sparse)


class _SparseScores:
    """A query's BM25 scores as the sorted positions that match a term and their scores
    (every other position scores 0): a query touches its matches, not the whole index."""

    def __init__(self, positions: np.ndarray, scores: np.ndarray) -> None:
        self.pos, self.sc = np.asarray(positions, dtype=np.int64), np.asarray(scores, dtype=np.float32)

    def at(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if not len(self.pos):
            return np.zeros(len(ids), dtype=np.float32)
        i = np.minimum(np.searchsorted(self.pos, ids), len(self.pos) - 1)
        return np.where(self.pos[i] == ids, self.sc[i], np.float32(0)).astype(np.float32)

    def top(self, m: int) -> np.ndarray:
        """Positions of the m best positive scores (ties at the cut by position)."""
        keep = self.sc > 0
        pos, sc = self.pos[keep], self.sc[keep]
        if len(pos) <= m:
            return pos
        if m <= 0:
            return pos[:0]
        cut = np.partition(sc, len(sc) - m)[len(sc) - m]
        above = pos[sc > cut]
        return np.concatenate([above, pos[sc == cut][:m - len(above)]])


class Searcher:
    def __init__(self, index: Index, fusion: Fusion = Fusion(), query_embedder: Embedder | None = None):
        self.index = index
        self.fusion = fusion
        self.embedder = query_embedder or get_embedder(index.manifest["embedder"]["spec"])
        built = index.manifest["embedder"].get("id")
        if query_embedder is None and built and not same_vectors(built, self.embedder):
            # e.g. the embedding package was upgraded since the build: its vectors would not match
            raise IndexMismatch(f"index {index.folder} was built with embedder {built!r}, but "
                           f"{index.manifest['embedder'].get('spec')!r} is now {self.embedder.id!r}; "
                           f"rebuild it with: rag build --rebuild --index {index.folder}")
        self.n = index.size
        self._lock = threading.Lock()   # FAISS search and jieba are not re-entrant-safe together
        self._prepared_lock = threading.Lock()
        self._prepared_cache: dict[str, tuple[str, list[int] | None]] = {}

    # ---- public API
    def search(self, query: str, k: int = 10, source: str | None = None,
               article: str | None = None) -> list[Result]:
        return self.search_many([query], k, source, article)[0]

    def embed(self, queries: Sequence[str]) -> np.ndarray:
        """Query vectors, for callers that embed one batch while ranking another."""
        return self.embedder.queries([clean_query(q) for q in queries])

    def search_many(self, queries: Sequence[str], k: int = 10, source: str | None = None,
                    article: str | None = None, vectors: np.ndarray | None = None) -> list[list[Result]]:
        """Results for each query; `vectors`, if given, are `embed(queries)` computed earlier."""
        k = check_k(k)
        qs = [clean_query(q) for q in queries]
        if not qs:
            return []
        qvecs = self.embedder.queries(qs) if vectors is None else vectors
        if len(qvecs) != len(qs):
            raise ValueError(f"{len(qvecs)} vectors for {len(qs)} queries")
        allowed = None
        if source or article:
            allowed = np.asarray(self.index.store.positions_where(source, article), dtype=np.int64)
        out = []
        dense_top = None
        if allowed is None and self.n:
            with self._lock:
                dense_top = self.index.dense.search(qvecs, min(self.fusion.candidates, self.n))
        for i, q in enumerate(qs):
            out.append(self._rank(q, qvecs[i], None if dense_top is None else dense_top[i], allowed, k))
        return out

    # ---- internals
    def leg_scores(self, query: str, qvec: np.ndarray, dense_top: np.ndarray | None,
                   allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Candidates and their exact dense and BM25 scores (exposed for benchmarks)."""
        terms = self.index.tokenizer.query_terms(query)
        with self._lock:
            if is_english(query) or not hasattr(self.index.sparse, "sparse_scores"):
                sparse_all = self.index.sparse.scores(terms)
                if is_english(query):
                    extra = self._translated_scores(query)
                    sparse_all = sparse_all + extra[0]
                    terms = terms + [t for t in extra[1] if t not in terms]
                hit = np.flatnonzero(sparse_all != 0)
                sparse = _SparseScores(hit, sparse_all[hit])
            else:
                sparse = _SparseScores(*self.index.sparse.sparse_scores(terms))
        n_cand = self.fusion.candidates
        if allowed is not None:
            pool = allowed
            if len(pool) == 0:
                return pool, np.zeros(0), np.zeros(0), terms
            top_d = self.index.dense.search_subset(qvec, pool, n_cand)
            sp = sparse.at(pool)
            top_s = pool[np.argsort(-sp)[:n_cand]]
            top_s = top_s[sparse.at(top_s) > 0]
        else:
            top_d = dense_top[dense_top >= 0] if dense_top is not None else np.zeros(0, dtype=np.int64)
            top_s = sparse.top(min(n_cand, self.n))
        cand = np.unique(np.concatenate([top_d, top_s]).astype(np.int64))
        dense = self.index.dense.scores(qvec, cand)
        return cand, dense, sparse.at(cand), terms

    def _translated_scores(self, query: str) -> tuple[np.ndarray, list[str]]:
        """BM25 of an English query's dictionary senses: each word scores by its best sense."""
        total = np.zeros(self.n, dtype=np.float32)
        used: list[str] = []
        for group in translate(query):
            toks = list(dict.fromkeys(t for sense in group for t in self.index.tokenizer(sense)
                                      if self.index.sparse.knows(t)))
            if toks:
                total += np.max([self.index.sparse.scores([t]) for t in toks], axis=0)
                used += toks
        return total, used

    def _rank(self, query: str, qvec: np.ndarray, dense_top, allowed, k: int) -> list[Result]:
        cand, dense, sparse, terms = self.leg_scores(query, qvec, dense_top, allowed)
        if len(cand) == 0:
            return []
        fused = fuse(dense, sparse, self.fusion.alpha)
        order = np.argsort(-fused, kind="stable")
        idf = self.index.sparse.idf(terms) if terms else {}
        results: list[Result] = []
        taken: list[tuple[str, int, int]] = []
        fetched = 0
        while len(results) < k and fetched < len(order):
            # chunks are read k at a time: overlaps that force a further read are rare
            top = order[fetched: fetched + k - len(results)]
            fetched += len(top)
            for j, c in zip(top, self.index.store.chunks(cand[top])):
                if any(s == c.source and c.start < e and b < c.end for s, b, e in taken):
                    continue
                taken.append((c.source, c.start, c.end))
                results.append(self._result(len(results) + 1, float(fused[j]), c, terms, idf,
                                            float(dense[j]), float(sparse[j])))
        return results

    def _result(self, rank: int, score: float, c: Chunk, terms: list[str], idf: dict[str, float],
                dense: float, sparse: float) -> Result:
        matched = matched_terms(c.text, terms)
        best = self.best_sentence(c, terms, idf)
        return Result(**c.citation(), rank=rank, score=round(score, 6), id=c.id, matched=matched,
                      best_sentence=best, scores={"dense": round(dense, 6), "bm25": round(sparse, 4)})

    def _prepared(self, c: Chunk) -> tuple[list[tuple[int, int, str, float]], list[int] | None]:
        """A chunk's sentences and the raw offset of each of its characters (cached:
        popular chunks come back query after query).  A sentence is (start, end) in the
        chunk's text without surrounding space, its normalized text to match query terms
        in, and a small bonus for length that breaks ties towards fuller sentences."""
        with self._prepared_lock:
            hit = self._prepared_cache.get(c.id)
        if hit is None:
            hit = (_sentences(c.text), _offsets_of(self.index, c))
            with self._prepared_lock:
                if len(self._prepared_cache) > 4096:
                    self._prepared_cache.clear()
                self._prepared_cache[c.id] = hit
        return hit

    def best_sentence(self, c: Chunk, terms: list[str], idf: dict[str, float]) -> dict:
        """The sentence of the chunk sharing the most (idf-weighted) query terms."""
        sentences, idx = self._prepared(c)
        best, best_score = None, -1.0
        for sent in sentences:
            score = sum(w for t, w in idf.items() if t in sent[2]) + sent[3]
            if score > best_score:
                best, best_score = sent, score
        if best is None:
            return {"text": c.text, "start": c.start, "end": c.end}
        a, b = best[0], best[1]           # c.text == clean(raw[start:end], joins): the offset rule
        start, end = (idx[a], idx[b - 1] + 1) if idx else (c.start, c.end)
        return {"text": c.text[a:b], "start": start, "end": end}


def _sentences(text: str) -> list[tuple[int, int, str, float]]:
    norm = normalize(text)
    same_len = len(norm) == len(text)
    out = []
    for m in _SENT.finditer(text):
        a, b = m.start(), m.end()
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b - a < 2:
            continue
        out.append((a, b, norm[m.start():m.end()] if same_len else normalize(text[a:b]), min(b - a, 80) / 1000))
    return out


def _offsets_of(index: Index, c: Chunk) -> list[int] | None:
    raw = _file_text(index, c.source)
    if raw is None:
        return None
    text, idx = clean_map(raw[c.start:c.end], c.joins, c.start)
    return idx if text == c.text else None


def matched_terms(text: str, terms: list[str]) -> list[str]:
    """Query terms that literally occur in the passage (longest first, for highlighting)."""
    low = text.lower()
    found = [t for t in terms if len(t) > 1 or not t.isascii()]
    found = [t for t in found if t in low]
    return sorted(set(found), key=lambda t: (-len(t), t))


def _file_text(index: Index, source: str) -> str | None:
    """A file's canonical text, cached on the index generation it belongs to."""
    texts = index.cache.setdefault("texts", {})
    text = texts.get(source)
    if text is None:
        text = index.store.file_text(source)
        if len(texts) >= 256:
            texts.clear()
        texts[source] = text
    return text
