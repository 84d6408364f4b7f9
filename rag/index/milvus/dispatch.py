"""`rag.index.build/load/verify/read_manifest/read_current`: the local index or Milvus, by folder.

A folder holding a Milvus-backed index (its `MILVUS` pointer) opens on Milvus whatever the
flags; a new index goes to Milvus when `--backend milvus` (or RAG_BACKEND=milvus) or a
Milvus URI (`--milvus-uri`, RAG_MILVUS_URI) asks for it. Everything else is the local index.
"""
from __future__ import annotations

from pathlib import Path

from rag import settings as rag_settings
from rag.errors import BadInput, IndexMismatch
from rag.index import builder as local_builder
from rag.index import loader as local_loader
from rag.index import manifest as local_manifest
from rag.index.layout import default_index_dir
from rag.index.layout import read_current as local_read_current
from rag.index.milvus import connection, state

BACKENDS = ("faiss", "milvus")
_chosen: dict[str, str] = {}


def choose(backend: str | None) -> None:
    """Process-wide backend of new indexes (from `--backend`)."""
    if backend:
        if backend not in BACKENDS:
            raise BadInput(f"unknown backend {backend!r}: use faiss or milvus")
        _chosen["backend"] = backend


def requested(backend: str | None = None) -> str:
    b = backend or _chosen.get("backend")
    if b:
        return b
    s = rag_settings.get()
    if s.backend == "milvus" or connection._override.get("uri"):
        return "milvus"
    return s.backend if s.backend in BACKENDS else "faiss"


def _dir(index_dir) -> Path:
    return Path(index_dir) if index_dir else default_index_dir()


def on_milvus(index_dir) -> bool:
    return state.is_milvus(_dir(index_dir))


def build(corpus, index_dir=None, *args, backend: str | None = None, uri: str | None = None,
          token: str | None = None, collection: str | None = None, reuse_vectors=None, **kwargs):
    index_dir = _dir(index_dir)
    if kwargs.get("only") is not None and (state.is_milvus(index_dir) or backend == "milvus" or uri):
        kwargs.pop("only")              # Milvus updates compare every file's hash anyway
    want = requested(backend if backend else ("milvus" if uri else None))
    if state.is_milvus(index_dir):
        if backend == "faiss":
            raise IndexMismatch(f"index {index_dir} is on Milvus; choose another --index folder "
                                f"for a local index")
        from rag.index.milvus.builder import build as milvus_build

        return milvus_build(corpus, index_dir, *args, uri=uri, token=token, collection=collection,
                            reuse_vectors=reuse_vectors, **kwargs)
    if want == "milvus":
        if local_read_current(index_dir) is not None:
            raise IndexMismatch(f"index {index_dir} is a local (faiss) index; choose another --index "
                                f"folder for Milvus (add --reuse-vectors {index_dir} to embed nothing again)")
        from rag.index.milvus.builder import build as milvus_build

        return milvus_build(corpus, index_dir, *args, uri=uri, token=token, collection=collection,
                            reuse_vectors=reuse_vectors, **kwargs)
    if reuse_vectors:
        raise BadInput("--reuse-vectors is for building a Milvus-backed index (--backend milvus)")
    return local_builder.build(corpus, index_dir, *args, **kwargs)


def load(index_dir=None, *args, **kwargs):
    if on_milvus(index_dir):
        from rag.index.milvus.index import load as milvus_load

        return milvus_load(_dir(index_dir), *args, **kwargs)
    return local_loader.load(index_dir, *args, **kwargs)


def verify(index_dir, *args, **kwargs):
    if on_milvus(index_dir):
        from rag.index.milvus import verify as milvus_verify

        return milvus_verify(index_dir, *args, **kwargs)
    return local_manifest.verify(index_dir, *args, **kwargs)


def read_manifest(index_dir):
    if on_milvus(index_dir):
        return state.read_manifest(Path(index_dir), deep=False)
    return local_manifest.read_manifest(index_dir)


def read_current(index_dir):
    if on_milvus(index_dir):
        return state.read_current(Path(index_dir))
    return local_read_current(index_dir)
