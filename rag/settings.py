"""Every `RAG_*` environment variable and default, read in one place.

`get()` reads the environment once per process (tests that change it call
`get.cache_clear()`). Modules take their defaults from here, never from `os.environ`.

| variable            | default        | meaning |
|---------------------|----------------|---------|
| RAG_CORPUS          | seeds          | corpus folder of the CLI and the app |
| RAG_INDEX           | index          | index folder |
| RAG_EMBEDDER        | e5-small       | embedder of new indexes |
| RAG_MODELS_DIR      | ~/.cache/rag/models | where `rag models install` puts converted models |
| RAG_THREADS         | (cores, max 4) | threads of the ONNX query encoder |
| RAG_DEBUG           | off            | print tracebacks of unexpected errors |
| RAG_CRASH_AT        | —              | test hook: a build kills itself at this point |
| RAG_MERGE_FACTOR    | 8              | index segments of one size tier merged together |
| RAG_FLUSH_CHUNKS    | 100000         | a build writes a segment every this many new chunks (its RAM buffer) |
| RAG_MAX_SEGMENT_CHUNKS | 250000      | largest segment a merge makes (a merge holds it in memory) |
| RAG_AUTH            | —              | web login `user:pass` |
| RAG_AUTH_FILE       | —              | file of `user:pass` lines |
| RAG_TEMP_TTL        | 3600           | seconds the app keeps uploads and batch results |
| RAG_TEMP_MAX_MB     | 1024           | most MB the app's temp folder may hold |
| RAG_API_TOKEN       | —              | bearer token of the REST API's writes |
| RAG_OCR_CACHE       | ~/.cache/rag/ocr | OCR results by content hash |
| RAG_MAX_PAGES       | 1000           | pages read from one paged document |
| RAG_MAX_PIXELS      | 60000000       | pixels of one image or scanned page |
| RAG_MAX_UNZIPPED    | 200 MiB        | decompressed size of one DOCX |
| RAG_BACKEND         | faiss          | backend of new indexes: faiss (embedded) or milvus |
| RAG_MILVUS_URI      | —              | Milvus: a local `*.db` path (milvus-lite) or http(s)://host:19530 |
| RAG_MILVUS_TOKEN    | —              | Milvus token (`user:password` or an API key); never written to disk |
| RAG_MILVUS_COLLECTION | —            | Milvus collection alias (default: rag) |
| RAG_DENSE_BACKEND   | faiss          | dense-vector backend of new local indexes (a name in rag.index.dense.BACKENDS, e.g. from a `rag.backends` entry point) |
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


@dataclass(frozen=True)
class Settings:
    corpus: str
    index: str
    embedder: str
    models_dir: Path
    threads: str
    debug: bool
    crash_at: str
    merge_factor: int
    auth: str
    auth_file: str
    temp_ttl: int
    temp_max_mb: int
    api_token: str
    ocr_cache: Path
    max_pages: int
    max_pixels: int
    max_unzipped: int
    ci: bool
    backend: str = "faiss"
    milvus_uri: str = ""
    milvus_token: str = ""
    milvus_collection: str = ""
    flush_chunks: int = 100_000
    max_segment_chunks: int = 250_000
    dense_backend: str = "faiss"


@lru_cache(maxsize=1)
def get() -> Settings:
    e = os.environ.get
    return Settings(
        corpus=e("RAG_CORPUS", "seeds"),
        index=e("RAG_INDEX", "index"),
        embedder=e("RAG_EMBEDDER", "e5-small"),
        models_dir=Path(e("RAG_MODELS_DIR") or _cache_home() / "rag" / "models"),
        threads=e("RAG_THREADS", ""),
        debug=bool(e("RAG_DEBUG")),
        crash_at=e("RAG_CRASH_AT", ""),
        merge_factor=max(2, _int("RAG_MERGE_FACTOR", 8)),
        auth=e("RAG_AUTH", "").strip(),
        auth_file=e("RAG_AUTH_FILE", "").strip(),
        temp_ttl=_int("RAG_TEMP_TTL", 3600),
        temp_max_mb=_int("RAG_TEMP_MAX_MB", 1024),
        api_token=e("RAG_API_TOKEN", "").strip(),
        ocr_cache=Path(e("RAG_OCR_CACHE") or _cache_home() / "rag" / "ocr"),
        max_pages=_int("RAG_MAX_PAGES", 1000),
        max_pixels=_int("RAG_MAX_PIXELS", 60_000_000),
        max_unzipped=_int("RAG_MAX_UNZIPPED", 200 * 2**20),
        ci=bool(e("CI")),
        backend=e("RAG_BACKEND", "").strip().lower() or "faiss",
        dense_backend=e("RAG_DENSE_BACKEND", "").strip() or "faiss",
        milvus_uri=e("RAG_MILVUS_URI", "").strip(),
        milvus_token=e("RAG_MILVUS_TOKEN", "").strip(),
        milvus_collection=e("RAG_MILVUS_COLLECTION", "").strip(),
        flush_chunks=max(1, _int("RAG_FLUSH_CHUNKS", 100_000)),
        max_segment_chunks=max(2, _int("RAG_MAX_SEGMENT_CHUNKS", 250_000)),
    )
