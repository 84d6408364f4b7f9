"""The index: generations on disk (layout), their manifest, the builder and the loader; a
dense leg (`dense/`, a backend plug-in point) and a keyword leg (`sparse/`)."""
from rag.index.builder import BuildReport, build
from rag.index.layout import (CRASH_POINTS, DEFAULT_INDEX, _pointer_check, default_index_dir,
                              read_current, writer_lock)
from rag.index.loader import Index, load
from rag.index.manifest import FORMAT, read_manifest, verify
# Milvus-backed indexes (issue 14): the same names, routed by the folder's recorded backend
from rag.index.milvus.dispatch import build, load, read_current, read_manifest, verify  # noqa: E402,F811

__all__ = ["_pointer_check", "BuildReport", "build", "CRASH_POINTS", "DEFAULT_INDEX", "default_index_dir", "read_current",
           "writer_lock", "Index", "load", "FORMAT", "read_manifest", "verify"]
