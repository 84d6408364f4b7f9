"""The two collections of a Milvus index and the check that a collection is one of ours.

`<alias>_gNNNNNN` holds one row per chunk: `pos` (its position, the primary key), the
fields filters and citation lookup query (`source`, `cstart`, `cend`, `title`,
`author`), the text, the rest of the citation record as JSON (a field added to
`rag.chunks.citation` needs no schema change), the dense vector and the BM25 sparse vector.
`<alias>_gNNNNNN_files` holds each file's canonical text and reader data, as JSON cut into
parts (a VARCHAR holds at most 65,535 bytes), versioned by the generation that wrote it.
"""
from __future__ import annotations

from rag.errors import BackendError, IndexMismatch

MAX_VARCHAR = 65535
PART_CHARS = 16000            # 4 bytes a character at most: a part always fits a VARCHAR
FLAT_MAX = 200_000            # exact search up to here, as the local index (rag.index.dense)
CHUNK_FIELDS = {"pos": "INT64", "id": "VARCHAR", "source": "VARCHAR", "cstart": "INT64",
                "cend": "INT64", "title": "VARCHAR", "author": "VARCHAR", "text": "VARCHAR",
                "record": "VARCHAR", "vec": "FLOAT_VECTOR", "kw": "SPARSE_FLOAT_VECTOR"}
FILE_FIELDS = {"key": "VARCHAR", "source": "VARCHAR", "fgen": "INT64", "part": "INT64",
               "data": "VARCHAR", "pad": "FLOAT_VECTOR"}


def ann_kind(n: int, ann: str) -> str:
    if ann not in ("auto", "flat", "hnsw"):
        raise BackendError(f"unknown ANN index {ann!r}: use auto, flat or hnsw")
    return ("flat" if n <= FLAT_MAX else "hnsw") if ann == "auto" else ann


def create(client, name: str, dim: int, ann: str) -> None:
    """Create the chunk and file collections `name`, `name_files` (indexes built, loaded)."""
    from pymilvus import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("pos", DataType.INT64, is_primary=True)
    s.add_field("id", DataType.VARCHAR, max_length=256)
    s.add_field("source", DataType.VARCHAR, max_length=4096)
    s.add_field("cstart", DataType.INT64)
    s.add_field("cend", DataType.INT64)
    s.add_field("title", DataType.VARCHAR, max_length=4096)
    s.add_field("author", DataType.VARCHAR, max_length=4096)
    s.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field("record", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field("kw", DataType.SPARSE_FLOAT_VECTOR)
    ip = client.prepare_index_params()
    if ann == "hnsw":
        ip.add_index("vec", index_type="HNSW", metric_type="IP", params={"M": 32, "efConstruction": 80})
    else:   # FLAT is exact, also under selective filters (milvus-lite's HNSW returns too few there)
        ip.add_index("vec", index_type="FLAT", metric_type="IP")
    ip.add_index("kw", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    ip.add_index("source", index_type="INVERTED")
    client.create_collection(name, schema=s, index_params=ip, consistency_level="Strong")

    f = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    f.add_field("key", DataType.VARCHAR, max_length=512, is_primary=True)
    f.add_field("source", DataType.VARCHAR, max_length=4096)
    f.add_field("fgen", DataType.INT64)
    f.add_field("part", DataType.INT64)
    f.add_field("data", DataType.VARCHAR, max_length=MAX_VARCHAR)
    f.add_field("pad", DataType.FLOAT_VECTOR, dim=2)      # Milvus wants a vector in every collection
    fp = client.prepare_index_params()
    fp.add_index("pad", index_type="FLAT", metric_type="L2")
    fp.add_index("source", index_type="INVERTED")
    client.create_collection(files_name(name), schema=f, index_params=fp, consistency_level="Strong")


def files_name(name: str) -> str:
    return f"{name}_files"


def _types(desc: dict) -> dict[str, tuple[str, int | None]]:
    out = {}
    for fd in desc.get("fields", []):
        t = fd.get("type")
        tname = getattr(t, "name", str(t))
        dim = (fd.get("params") or {}).get("dim")
        out[fd["name"]] = (tname, int(dim) if dim is not None else None)
    return out


def check(client, name: str, dim: int, where: str) -> None:
    """Refuse a collection that is missing or is not a rag chunk collection of this dimension."""
    for coll, want in ((name, CHUNK_FIELDS), (files_name(name), FILE_FIELDS)):
        if not client.has_collection(coll):
            raise BackendError(f"Milvus collection {coll} is missing at {where}; rebuild the index "
                               f"with: rag build --rebuild --backend milvus")
        have = _types(client.describe_collection(coll))
        bad = [f for f, t in want.items() if f not in have or have[f][0] != t]
        if bad:
            raise IndexMismatch(f"Milvus collection {coll} at {where} has another schema (fields "
                                f"{', '.join(bad)} differ); it was not built by rag, or by another "
                                f"version: rebuild with: rag build --rebuild --backend milvus")
    vdim = _types(client.describe_collection(name))["vec"][1]
    if vdim is not None and vdim != dim:
        raise IndexMismatch(f"Milvus collection {name} holds {vdim}-dimensional vectors, the "
                            f"embedder makes {dim}; rebuild with: rag build --rebuild --backend milvus")
