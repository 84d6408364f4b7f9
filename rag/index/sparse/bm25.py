"""BM25 over jieba tokens (Lucene variant, k1=1.2, b=0.75) as one self-contained part:
the postings of rag.index.sparse.postings with every row live. Indexes are built of
segments (rag.index.segment), each with such postings; this wrapper serves code and tests
that want a single keyword index. Scores equal bm25s's "lucene" method (tested), which
earlier indexes used."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from rag.index.sparse import postings
from rag.index.sparse.postings import B, K1, CorpusBM25, SegmentPostings

FILES_DIR = postings.DIR


class _AllLive:
    """The live map of a single segment without deletions."""

    def __init__(self, n: int) -> None:
        self.size = n
        self.live_rows = [np.arange(n, dtype=np.int64)]
        self.row2pos = [np.arange(n, dtype=np.int64)]


class BM25Index(CorpusBM25):
    """The keyword leg as search sees it: scores over all chunks, idf, vocabulary."""

    def __init__(self, seg: SegmentPostings) -> None:
        super().__init__([seg], _AllLive(len(seg.doclen)))


class BM25Backend:
    """BM25 postings over jieba tokens in a folder's `bm25/`."""
    name = "bm25"

    def build(self, folder: Path, corpus_tokens: Sequence[list[str]]) -> dict:
        info = postings.write(Path(folder), corpus_tokens)
        return {"k1": K1, "b": B, "docs": info["docs"]}

    def open(self, folder: Path) -> BM25Index:
        return BM25Index(SegmentPostings(Path(folder)))
