"""The manifest of a commit point: what built it, its segments, files and their
checksums; `verify`.

CURRENT pins the manifest's checksum and the manifest every data file's checksum and size.
`verify` always checks the commit point and that every file is there with its size; it
hashes every file when asked (`rag check`, deep=True) or, by default, when the index's
files total at most DEEP_AUTO_BYTES (seed-scale indexes: a flipped bit anywhere is found
before anything is opened). A large index opens in well under a second without reading
gigabytes (bench/bench_scale.py: open); `rag check` still reads everything.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rag.errors import IndexMissing, RagError
from rag.index.layout import _damaged, _read_pointer, _sha256

FORMAT = 2
LEGACY_FORMAT = 1          # one generation rewritten at every update (before segments)
DEEP_AUTO_BYTES = 256 * 2**20
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
    if manifest.get("format") in (FORMAT, LEGACY_FORMAT) and (
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


def migration_message(index_dir: Path) -> str:
    return (f"index {index_dir} has format {LEGACY_FORMAT} (written before segments); update it with: "
            f"rag build --index {index_dir} (vectors of unchanged chunks are reused) or rebuild it with: "
            f"rag build --rebuild --index {index_dir}")


def verify(index_dir: Path, deep: bool | None = None, legacy_ok: bool = False,
           manifest: dict | None = None) -> dict:
    """Check the current commit against its manifest; returns the manifest or raises.
    `deep`: hash every file (None: when the index is small, see DEEP_AUTO_BYTES).
    `legacy_ok`: accept a format-1 index (checked as it always was) for a build to migrate.
    `manifest`: the current one, already read by the caller (a 1M-chunk manifest is ~20 MB)."""
    index_dir = Path(index_dir)
    manifest = manifest if manifest is not None else read_manifest(index_dir)
    if manifest is None:
        gens = sorted(p.name for p in index_dir.glob("gen-*") if p.is_dir()) if index_dir.is_dir() else []
        if gens:
            raise _damaged(index_dir, f"CURRENT is missing (generations present: {', '.join(gens)})")
        raise IndexMissing(f"no index in {index_dir}; build it with: rag build --index {index_dir}")
    gen = manifest.get("generation")
    fix = f"rebuild it with: rag build --rebuild --index {index_dir}"
    if manifest.get("format") == LEGACY_FORMAT:
        if not legacy_ok:
            raise RagError(migration_message(index_dir))
        return _verify_legacy(index_dir, manifest, deep is not False)
    if manifest.get("format") != FORMAT:
        raise RagError(f"index {index_dir} has format {manifest.get('format')}, expected {FORMAT}; {fix}")
    checksums, sizes = manifest["checksums"], manifest.get("sizes") or {}
    segs = manifest.get("segments")
    if not isinstance(segs, list):
        raise _damaged(index_dir, f"{gen}/manifest.json is incomplete or names another generation")
    for seg in segs:
        for name in segment_files(seg):
            if f"segments/{seg['name']}/{name}" not in checksums:
                raise _damaged(index_dir, f"{gen}/manifest.json has no checksum for segments/{seg['name']}/{name}")
    if deep is None:
        deep = sum(int(v) for v in sizes.values()) <= DEEP_AUTO_BYTES
    for rel, digest in checksums.items():
        p = index_dir / rel
        try:
            size = p.stat().st_size if p.is_file() else None
        except OSError:
            size = None
        if size is None:
            raise _damaged(index_dir, f"{rel} is missing")
        if rel in sizes and size != sizes[rel]:
            raise _damaged(index_dir, f"{rel} fails its checksum (size {size}, expected {sizes[rel]})")
        if deep:
            try:
                ok = _sha256(p) == digest
            except OSError as e:
                raise _damaged(index_dir, f"{rel} is unreadable ({e.strerror or e})") from None
            if not ok:
                raise _damaged(index_dir, f"{rel} fails its checksum")
    _check_counts(index_dir, manifest)
    return manifest


def segment_files(seg: dict) -> tuple[str, ...]:
    """The files segment `seg` (a manifest entry) must have."""
    from rag.index.dense import BACKENDS
    from rag.index.ngrams import FILES as CITE_FILES
    from rag.index.sparse.postings import FILES as BM25_FILES

    dense = BACKENDS.get(seg.get("backend", "faiss"))
    return ("segment.json", "store.sqlite") + tuple(dense.files(seg.get("dense") or {})) + BM25_FILES + CITE_FILES


def _check_counts(index_dir: Path, manifest: dict) -> None:
    counts = manifest["counts"]
    if not all(isinstance(counts.get(k), int) for k in ("files", "chunks", "vectors", "bm25_docs")) \
            or not (counts["chunks"] == counts["vectors"] == counts["bm25_docs"]):
        raise _damaged(index_dir, f"counts disagree {counts}")


def _verify_legacy(index_dir: Path, manifest: dict, deep: bool) -> dict:
    """A format-1 generation, checked as before segments (for a build that migrates it)."""
    gen = manifest.get("generation")
    gen_dir = index_dir / str(gen)
    checksums = manifest.get("checksums") or {}
    for rel, digest in checksums.items():
        p = gen_dir / rel
        if not p.is_file():
            raise _damaged(index_dir, f"{gen}/{rel} is missing")
        if deep and _sha256(p) != digest:
            raise _damaged(index_dir, f"{gen}/{rel} fails its checksum")
    _check_counts(index_dir, manifest)
    return manifest
