"""One immutable segment of an index: its chunks and files (store.sqlite), vectors and ANN
(the dense backend's files), BM25 postings (bm25/) and citation postings (cite/), with
`segment.json` (written last) recording counts and every file's checksum.

A segment is written into `segments/.tmp-seg-N`, flushed, and renamed into place; only a
commit (rag.index.commit) makes it part of the index. Nothing ever changes a segment
after that: deletions live in the commit, merges write a new segment.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from rag.index import store as store_mod
from rag.index.layout import _fsync_dir, _fsync_tree, _sha256
from rag.index.sparse import postings as bm25

META = "segment.json"
SEGMENTS = "segments"
PARALLEL_MIN = 20_000          # chunks from which tokenizing uses every core
PARALLEL_MIN_DOCS = 200        # documents from which chunking and tokenizing use every core


def _tok_worker(args):
    words, texts = args
    from rag.index.sparse import Tokenizer

    tok = _tok_worker.cache.get(words)
    if tok is None:
        tok = _tok_worker.cache[words] = Tokenizer(words, fast=True)
    return [tok(t) for t in texts]


_tok_worker.cache = {}


def tokenize(texts: Sequence[str], words: Sequence[str]) -> list[list[str]]:
    """jieba tokens of each text, across all cores for large batches (jieba is pure Python:
    ~1,500 chunks/s per core here, the largest cost of a build without embedding)."""
    words = tuple(sorted(set(words)))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if len(texts) < PARALLEL_MIN or cores < 2:
        return _tok_worker((words, list(texts)))
    import multiprocessing as mp

    step = 2000
    parts = [(words, list(texts[a:a + step])) for a in range(0, len(texts), step)]
    with mp.get_context("fork").Pool(cores) as pool:
        out: list[list[str]] = []
        for toks in pool.imap(_tok_worker, parts):
            out += toks
    return out


def _ct_worker(args):
    """Chunks, embedded texts and tokens of _ct_worker.docs[a:b] (documents inherited by fork)."""
    a, b, words, settings = args
    from rag.chunks import chunk_document, embed_text
    from rag.index.sparse import Tokenizer, normalize

    tok = _tok_worker.cache.get(words)
    if tok is None:
        tok = _tok_worker.cache[words] = Tokenizer(words, fast=True)
    rows, texts, ntexts, tokens, loaded = [], [], [], [], []
    for d in _ct_worker.docs[a:b]:
        if not hasattr(d, "text"):          # a document the scan let go: read it again here
            d = d.load()
            loaded.append(d)
        else:
            loaded.append(None)
        for c in chunk_document(d, settings):
            rows.append(store_mod.chunk_row(c))
            t = embed_text(c)
            texts.append(t)
            n = normalize(t)
            ntexts.append(n)
            tokens.append(tok.cut_normalized(n))
    return rows, texts, ntexts, bm25.batch_arrays(tokens), loaded


_ct_worker.docs = []


def chunk_and_tokenize(docs: Sequence, settings, words: Sequence[str]) \
        -> tuple[list[tuple], list[str], list[str], bm25.PostingsBuilder]:
    """(store rows, embedded texts, their normalize()d forms, BM25 postings of their jieba
    tokens) of every chunk of `docs`, in order."""
    rows: list[tuple] = []
    texts: list[str] = []
    ntexts: list[str] = []
    post = bm25.PostingsBuilder()
    for _docs, r, t, n, batch in iter_chunk_and_tokenize(list(docs), settings, words):
        rows += r
        texts += t
        ntexts += n
        post.add(batch)
    return rows, texts, ntexts, post


def iter_chunk_and_tokenize(docs: list, settings, words: Sequence[str], step: int = 100, ahead: int = 0):
    """Yields (documents, store rows, embedded texts, normalize()d texts, BM25 batch arrays)
    of consecutive parts of `docs` in order, so a build can flush a segment whenever its
    buffer is full instead of holding every chunk of the corpus. It consumes `docs`: an
    entry is set to None once yielded, so a document is freed when its segment is written.
    Chunking and jieba are pure Python (~11,000 and ~2,000 chunks/s a core here): a large
    batch is cut by every core at once (one pool for the whole stream), each worker taking
    whole documents."""
    words = tuple(sorted(set(words)))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    parts = [(a, min(a + step, len(docs)), words, settings) for a in range(0, len(docs), step)]
    _ct_worker.docs = docs

    def taken(p, out):
        part = [x if x is not None else d for d, x in zip(docs[p[0]:p[1]], out[-1])]
        docs[p[0]:p[1]] = [None] * (p[1] - p[0])
        return (part, *out[:-1])

    try:
        if cores < 2 or len(docs) < PARALLEL_MIN_DOCS:
            for p in parts:
                yield taken(p, _ct_worker(p))
            return
        import multiprocessing as mp

        from collections import deque

        with mp.get_context("fork").Pool(cores) as pool:
            # a bounded look-ahead (not imap): while the caller flushes a segment the
            # workers keep cutting `ahead` parts, but do not run through the whole corpus
            # into the parent's memory (with 4 parts they sat idle during each flush: the
            # 1M build used 1.2 of 2 cores)
            todo, flight = iter(parts), deque()
            for p in todo:
                flight.append((p, pool.apply_async(_ct_worker, (p,))))
                if len(flight) >= max(2 * cores, ahead):
                    break
            while flight:
                p, res = flight.popleft()
                out = res.get()
                nxt = next(todo, None)
                if nxt is not None:
                    flight.append((nxt, pool.apply_async(_ct_worker, (nxt,))))
                yield taken(p, out)
    finally:
        _ct_worker.docs = []


def write(index_dir: Path, name: str, files: list[tuple], file_words: Iterable[tuple[str, str]],
          chunk_rows: list[tuple], ntexts: list[str], tokens: Sequence[list[str]] | tuple, vectors: np.ndarray,
          dense_backend, ann: str, crash=None) -> dict:
    """Write segment `name` and rename it into `segments/`; returns its metadata.
    `files` are store.file_row tuples (their texts also feed the citation postings)."""
    from rag.index.ngrams import NgramIndex

    seg_root = index_dir / SEGMENTS
    seg_root.mkdir(parents=True, exist_ok=True)
    tmp = seg_root / f".tmp-{name}"
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    n = store_mod.create_segment(tmp / "store.sqlite", files, chunk_rows, ntexts, file_words)
    if crash:
        crash()
    if isinstance(tokens, tuple):        # a merge: postings remapped from the merged segments
        bm25_info = bm25.write_arrays(tmp, *tokens)
    else:
        bm25_info = bm25.write(tmp, tokens)
    if not (n == len(vectors) == bm25_info["docs"]):
        raise ValueError(f"segment {name}: {n} chunks, {len(vectors)} vectors, {bm25_info['docs']} bm25 rows")
    dense_info = dense_backend.build(tmp, vectors, {"ann": ann})
    NgramIndex((f[0], f[3]) for f in files).save(tmp)
    meta = {"name": name, "rows": n, "files": len(files), "dense": dense_info,
            "backend": dense_backend.name, "bm25": bm25_info}
    meta["checksums"] = {p.relative_to(tmp).as_posix(): _sha256(p)
                         for p in sorted(tmp.rglob("*")) if p.is_file()}
    (tmp / META).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    meta["checksums"][META] = _sha256(tmp / META)
    _fsync_tree(tmp)
    os.replace(tmp, seg_root / name)
    _fsync_dir(seg_root)
    return meta


@dataclass
class Segment:
    """An opened segment: store, dense part, BM25 postings; citation postings on demand."""
    name: str
    folder: Path
    rows: int
    store: store_mod.Store
    dense: object
    postings: bm25.SegmentPostings

    def cite(self, live_files: np.ndarray | None = None):
        from rag.index.ngrams import NgramIndex

        return NgramIndex.open(self.folder, live_files)


def open_segment(index_dir: Path, info: dict) -> Segment:
    from rag.index.dense import BACKENDS

    folder = index_dir / SEGMENTS / info["name"]
    dense = BACKENDS.get(info.get("backend", "faiss")).open(folder, info.get("dense") or {})
    post = bm25.SegmentPostings(folder)
    st = store_mod.Store(folder / "store.sqlite")
    return Segment(info["name"], folder, int(info["rows"]), st, dense, post)


def next_name(index_dir: Path) -> str:
    root = index_dir / SEGMENTS
    nums = [int(p.name.rsplit("-", 1)[1]) for p in root.glob("*seg-*") if p.name.rsplit("-", 1)[1].isdigit()] \
        if root.is_dir() else []
    return f"seg-{max(nums, default=0) + 1:06d}"
