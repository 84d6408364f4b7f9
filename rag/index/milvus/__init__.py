"""The same index on Milvus: milvus-lite (`*.db`, embedded) for development, a Milvus server or
cluster by URI. Vectors, chunks, keyword vectors and file texts live in Milvus; the index
folder keeps the manifest (the commit point), the tokenizer's words and BM25 statistics.

`rag.index.load/build/verify` come here when the folder is a Milvus-backed index (its
manifest records the backend, so later commands need no flags) or `--backend milvus`
asks for one. Needs the `milvus` extra (`pip install 'rag[milvus]'`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.errors import IndexDamaged
from rag.index.milvus.connection import Target, release, resolve, use
from rag.index.milvus.state import is_milvus, read_current, read_manifest


def build(*args, **kwargs):
    from rag.index.milvus.builder import build as _build

    return _build(*args, **kwargs)


def load(index_dir, embedder=None, settings=None, uri=None, token=None):
    from rag.index.milvus.index import load as _load

    return _load(index_dir, embedder=embedder, settings=settings, uri=uri, token=token)


def verify(index_dir: str | Path, deep: bool = True) -> dict:
    """`rag check`: local files against their checksums, then the collection: schema, live
    row count against the manifest, and a sample of vectors against their recorded checksums."""
    from rag.index.milvus import connection
    from rag.index.milvus.builder import _vec_sum
    from rag.index.milvus.index import open_collection, snapshot_filter
    from rag.index.milvus.state import require

    index_dir = Path(index_dir)
    m = require(index_dir)
    if not deep:
        return m
    target, client = open_collection(m, index_dir)
    name = m["milvus"]["collection"]
    fix = f"rebuild it with: rag build --rebuild --index {index_dir}"
    r = connection.call(target, client.query, name, filter=snapshot_filter(m), output_fields=["count(*)"])
    n = int(r[0]["count(*)"])
    if n != m["counts"]["chunks"]:
        raise IndexDamaged(f"index {index_dir} is damaged: Milvus collection {name} holds {n} chunks, "
                           f"the manifest {m['counts']['chunks']}; {fix}")
    sample = m["milvus"].get("sample", {})
    if sample:
        ids = sorted(int(p) for p in sample)
        rows = connection.call(target, client.query, name, filter=f"pos in {ids}",
                               output_fields=["pos", "vec"], limit=len(ids))
        got = {int(x["pos"]): _vec_sum(np.asarray(x["vec"], dtype=np.float32)) for x in rows}
        bad = [p for p in ids if got.get(p) != sample[str(p)]]
        if bad:
            raise IndexDamaged(f"index {index_dir} is damaged: {len(bad)} of {len(ids)} sampled vectors "
                               f"in Milvus collection {name} differ from the build (first: position "
                               f"{bad[0]}); {fix}")
    return m


__all__ = ["Target", "build", "is_milvus", "load", "read_current", "read_manifest", "release",
           "resolve", "use", "verify"]
