"""BM25 over jieba tokens, with bm25s doing the scoring (Lucene variant, k1=1.2, b=0.75)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

K1, B = 1.2, 0.75


def build(corpus_tokens: Sequence[list[str]]):
    import bm25s

    model = bm25s.BM25(k1=K1, b=B, method="lucene")
    # bm25s needs at least one token per document; an empty chunk scores 0 everywhere
    model.index([toks or [""] for toks in corpus_tokens], show_progress=False)
    return model


def save(model, folder: Path) -> None:
    model.save(str(folder), show_progress=False)


def load(folder: Path):
    import bm25s

    return bm25s.BM25.load(str(folder), mmap=False, show_progress=False)


def scores(model, terms: list[str], n_docs: int) -> np.ndarray:
    """BM25 score of every document for these query terms (zeros when none is known)."""
    ids = [model.vocab_dict[t] for t in terms if t in model.vocab_dict and t]
    if not ids:
        return np.zeros(n_docs, dtype=np.float32)
    return np.asarray(model.get_scores_from_ids(ids), dtype=np.float32)


def idf(model, terms: list[str], n_docs: int) -> dict[str, float]:
    """Inverse document frequency of each known term (for sentence scoring and highlights)."""
    out = {}
    indptr = model.scores["indptr"]
    for t in terms:
        tid = model.vocab_dict.get(t)
        if tid is None or not t:
            continue
        df = int(indptr[tid + 1] - indptr[tid])
        out[t] = float(np.log(1 + (n_docs - df + 0.5) / (df + 0.5)))
    return out


FILES_DIR = "bm25"


class BM25Index:
    """The keyword leg as search sees it: scores over all chunks, idf, vocabulary."""

    def __init__(self, model) -> None:
        self.model = model
        self.ntotal = int(model.scores["num_docs"])

    def scores(self, terms: list[str]) -> np.ndarray:
        return scores(self.model, terms, self.ntotal)

    def idf(self, terms: list[str]) -> dict[str, float]:
        return idf(self.model, terms, self.ntotal)

    def knows(self, term: str) -> bool:
        return term in self.model.vocab_dict


class BM25Backend:
    """bm25s (Lucene BM25, k1=1.2, b=0.75) over jieba tokens, in the generation's `bm25/`."""
    name = "bm25s"

    def build(self, folder: Path, corpus_tokens: Sequence[list[str]]) -> dict:
        model = build(corpus_tokens)
        save(model, folder / FILES_DIR)
        return {"k1": K1, "b": B, "docs": int(model.scores["num_docs"])}

    def open(self, folder: Path) -> BM25Index:
        return BM25Index(load(folder / FILES_DIR))
