"""The keyword leg as sparse vectors: client-side BM25 with corpus-wide statistics.

A chunk is stored as {term id: tf / (tf + k1 (1 - b + b dl / avgdl))} (the term-frequency
part of Lucene BM25, as bm25s computes it), a query as {term id: idf}; Milvus's inner
product of the two is then exactly the chunk's BM25 score. Term ids are jieba tokens
hashed to 31 bits. Document frequencies live in the index folder (`terms.json`) and are
updated with every insert and delete, so idf is corpus-wide and the same on every shard;
avgdl is fixed when the collection is built (an update stores new chunks against it;
a full rebuild refreshes it). On a fresh build the scores equal bm25s's to float32
precision, so fusion behaves as on the local index.

Chosen over Milvus's own BM25 function (`{"tokenizer": "jieba"}`): in milvus-lite its
scores are negative and its idf per segment, and its analyzer cannot use our tokenizer
(NFKC, Traditional to Simplified, the corpus's quoted terms, stop words), so it cannot give
the exact scores of arbitrary candidates that our fusion needs (see docs/scale-out.md).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

K1, B = 1.2, 0.75


def term_id(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "little") & 0x7FFFFFFF


def doc_vector(tokens: list[str], avgdl: float) -> dict[int, float]:
    """Stored weights of one chunk (an empty chunk gets one zero entry: Milvus needs one)."""
    dl = len(tokens) or 1
    norm = K1 * (1 - B + B * dl / (avgdl or 1.0))
    out: dict[int, float] = {}
    for t, tf in Counter(tokens).items():
        tid = term_id(t)
        out[tid] = out.get(tid, 0.0) + tf / (tf + norm)
    return out or {0: 0.0}


@dataclass
class Stats:
    """Corpus-wide BM25 statistics: live chunks, document frequencies by term id (so the rows
    an update deletes take exactly their own terms out, read back from their stored vectors)."""
    docs: int = 0
    avgdl: float = 0.0                  # fixed at the last full build
    df: dict[int, int] = field(default_factory=dict)

    def add_ids(self, id_sets: Iterable[Iterable[int]], sign: int = 1) -> None:
        for ids in id_sets:
            self.docs += sign
            for tid in ids:
                n = self.df.get(tid, 0) + sign
                if n > 0:
                    self.df[tid] = n
                else:
                    self.df.pop(tid, None)

    def add(self, token_lists: list[list[str]]) -> None:
        self.add_ids({term_id(t) for t in toks} for toks in token_lists)

    def remove_vectors(self, vectors: Iterable[dict]) -> None:
        """Take out chunks by their stored sparse vectors (zero entries mark empty chunks)."""
        self.add_ids(({int(k) for k, v in vec.items() if v > 0} for vec in vectors), sign=-1)

    def freeze_avgdl(self, token_lists: list[list[str]]) -> None:
        self.avgdl = sum(len(t) or 1 for t in token_lists) / len(token_lists) if token_lists else 1.0

    def idf(self, terms: Iterable[str]) -> dict[str, float]:
        n = self.docs
        return {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t in terms
                if t and (d := self.df.get(term_id(t)))}

    def knows(self, term: str) -> bool:
        return term_id(term) in self.df

    def query_vector(self, terms: list[str]) -> dict[int, float]:
        out: dict[int, float] = {}
        for t, w in self.idf(terms).items():
            tid = term_id(t)
            out[tid] = max(out.get(tid, 0.0), w)
        return out

    def to_json(self) -> str:
        return json.dumps({"docs": self.docs, "avgdl": self.avgdl, "df": self.df}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> "Stats":
        d = json.loads(raw)
        return cls(int(d["docs"]), float(d["avgdl"]), {int(k): int(v) for k, v in d["df"].items()})
