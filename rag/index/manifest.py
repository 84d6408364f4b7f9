"""The manifest of a generation: what built it, its files and their checksums; `verify`.

CURRENT pins the manifest's checksum and the manifest every data file's, so a single
flipped bit anywhere is found before any file is opened.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rag.errors import IndexMissing, RagError
from rag.index.layout import _damaged, _read_pointer, _sha256

FORMAT = 1
# files every generation has besides its backends' own
CORE_FILES = ("store.sqlite", "words.txt")
DEFAULT_BACKENDS = {"dense": "faiss", "sparse": "bm25s"}


def backends_of(manifest: dict) -> dict:
    """Which backends built this index (indexes from before backends were recorded: the defaults)."""
    return {**DEFAULT_BACKENDS, **(manifest.get("backends") or {})}


_MANIFEST_DICTS = ("embedder", "counts", "checksums", "files", "chunker_settings")


def read_manifest(index_dir: Path) -> dict | None:
    index_dir = Path(index_dir)
    ptr = _read_pointer(index_dir)
    if ptr is None:
        return None
    gen = ptr["generation"]
    rel = f"{gen}/manifest.json"
    try:
        raw = (index_dir / gen / "manifest.json").read_bytes()
    except FileNotFoundError:
        raise _damaged(index_dir, f"CURRENT names {gen}, but {rel} is missing") from None
    except OSError as e:
        raise _damaged(index_dir, f"{rel} is unreadable ({e.strerror or e})") from None
    if ptr["manifest_sha256"] and hashlib.sha256(raw).hexdigest() != ptr["manifest_sha256"]:
        raise _damaged(index_dir, f"{rel} fails its checksum")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise _damaged(index_dir, f"{rel} is not valid JSON") from None
    if not isinstance(manifest, dict):
        raise _damaged(index_dir, f"{rel} is not a manifest")
    if manifest.get("format") == FORMAT and (
            manifest.get("generation") != gen
            or not all(isinstance(manifest.get(k), dict) for k in _MANIFEST_DICTS)):
        raise _damaged(index_dir, f"{rel} is incomplete or names another generation")
    return manifest


def _data_files(gen_dir: Path) -> list[Path]:
    """Every file of a generation except its manifest (all of them get checksums)."""
    files = sorted(p for p in gen_dir.rglob("*") if p.is_file() and p.name != "manifest.json")
    return files


def required_files(manifest: dict) -> tuple[str, ...]:
    """The files a generation built by these backends must have."""
    from rag.index.dense import BACKENDS

    dense = BACKENDS.get(backends_of(manifest)["dense"])
    return CORE_FILES + tuple(dense.files(manifest.get("dense") or {}))


def verify(index_dir: Path, deep: bool = True) -> dict:
    """Check an index generation against its manifest; returns the manifest or raises.
    CURRENT pins the manifest's checksum and the manifest every data file's, so with `deep`
    a single flipped bit anywhere is found before any file is opened."""
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    if manifest is None:
        gens = sorted(p.name for p in index_dir.glob("gen-*") if p.is_dir()) if index_dir.is_dir() else []
        if gens:
            raise _damaged(index_dir, f"CURRENT is missing (generations present: {', '.join(gens)})")
        raise IndexMissing(f"no index in {index_dir}; build it with: rag build --index {index_dir}")
    gen = manifest.get("generation")
    gen_dir = index_dir / str(gen)
    fix = f"rebuild it with: rag build --rebuild --index {index_dir}"
    if manifest.get("format") != FORMAT:
        raise RagError(f"index {index_dir} has format {manifest.get('format')}, expected {FORMAT}; {fix}")
    checksums = manifest["checksums"]
    for name in required_files(manifest):
        if name not in checksums:
            raise _damaged(index_dir, f"{gen}/manifest.json has no checksum for {name}")
    for rel, digest in checksums.items():
        p = gen_dir / rel
        if not p.is_file():
            raise _damaged(index_dir, f"{gen}/{rel} is missing")
        if deep:
            try:
                ok = _sha256(p) == digest
            except OSError as e:
                raise _damaged(index_dir, f"{gen}/{rel} is unreadable ({e.strerror or e})") from None
            if not ok:
                raise _damaged(index_dir, f"{gen}/{rel} fails its checksum")
    counts = manifest["counts"]
    if not all(isinstance(counts.get(k), int) for k in ("files", "chunks", "vectors", "bm25_docs")) \
            or not (counts["chunks"] == counts["vectors"] == counts["bm25_docs"]):
        raise _damaged(index_dir, f"counts disagree {counts}")
    return manifest


