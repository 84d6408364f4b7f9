"""What a Milvus-backed index keeps locally: the manifest (the commit point), the tokenizer's
word list and the BM25 statistics, one small folder per generation.

  MILVUS              {"generation", "manifest_sha256", "check"}: replaced atomically (the
                      commit); its presence marks the folder as a Milvus-backed index
  mgen-000007/        manifest.json (backend, URI, collection, embedder, chunker, files and
                      hashes, counts, position ranges), words.txt, terms.json
  .lock               held by the one writer

Everything else (vectors, chunks, keyword vectors, file texts) is in Milvus.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from rag.errors import IndexDamaged, IndexMissing
from rag.index.layout import _fsync_dir as _fsync

POINTER = "MILVUS"
FORMAT = "milvus-1"
_GEN = re.compile(r"mgen-(\d{6,})")


def is_milvus(index_dir: Path) -> bool:
    return (Path(index_dir) / POINTER).is_file()


def _check(gen: str, sha: str) -> str:
    return hashlib.sha256(f"{gen}\n{sha}".encode()).hexdigest()[:16]


def _damaged(index_dir: Path, what: str) -> IndexDamaged:
    return IndexDamaged(f"index {index_dir} is damaged: {what}; rebuild it with: "
                        f"rag build --rebuild --backend milvus --index {index_dir}")


def read_current(index_dir: Path) -> str | None:
    ptr = _pointer(Path(index_dir))
    return ptr["generation"] if ptr else None


def _pointer(index_dir: Path) -> dict | None:
    try:
        raw = (index_dir / POINTER).read_bytes()
    except FileNotFoundError:
        return None
    try:
        ptr = json.loads(raw)
        gen, sha = ptr["generation"], ptr["manifest_sha256"]
        ok = _GEN.fullmatch(gen) and ptr.get("check") == _check(gen, sha)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise _damaged(index_dir, f"{POINTER} fails its checksum")
    return ptr


def read_manifest(index_dir: Path, deep: bool = True) -> dict | None:
    """The current manifest, checked against the pointer (and its side files with `deep`)."""
    index_dir = Path(index_dir)
    ptr = _pointer(index_dir)
    if ptr is None:
        return None
    gen = ptr["generation"]
    try:
        raw = (index_dir / gen / "manifest.json").read_bytes()
    except OSError:
        raise _damaged(index_dir, f"{gen}/manifest.json is missing or unreadable") from None
    if hashlib.sha256(raw).hexdigest() != ptr["manifest_sha256"]:
        raise _damaged(index_dir, f"{gen}/manifest.json fails its checksum")
    m = json.loads(raw)
    if deep:
        for name, digest in m["checksums"].items():
            try:
                ok = hashlib.sha256((index_dir / gen / name).read_bytes()).hexdigest() == digest
            except OSError:
                ok = False
            if not ok:
                raise _damaged(index_dir, f"{gen}/{name} is missing or fails its checksum")
    return m


def read_side(index_dir: Path, manifest: dict, name: str) -> str:
    return (Path(index_dir) / manifest["generation"] / name).read_text(encoding="utf-8")


def require(index_dir: Path) -> dict:
    m = read_manifest(index_dir)
    if m is None:
        raise IndexMissing(f"no index in {index_dir}; build it with: rag build --backend milvus "
                           f"--milvus-uri URI --index {index_dir}")
    return m


def generation_number(gen: str | None) -> int:
    m = _GEN.fullmatch(gen or "")
    return int(m.group(1)) if m else 0


def gen_name(n: int) -> str:
    return f"mgen-{n:06d}"


def previous(index_dir: Path, gen: str) -> dict | None:
    """The manifest of the newest generation folder older than `gen` (readers may still use it)."""
    older = sorted(p for p in Path(index_dir).glob("mgen-*") if _GEN.fullmatch(p.name) and p.name < gen)
    for p in reversed(older):
        try:
            return json.loads((p / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return None


def commit(index_dir: Path, manifest: dict, side: dict[str, str]) -> None:
    """Write a generation folder (manifest + side files, flushed), then switch the pointer."""
    index_dir = Path(index_dir)
    gen = manifest["generation"]
    tmp = index_dir / f".tmp-{gen}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    sums = {}
    for name, text in side.items():
        data = text.encode("utf-8")
        _write(tmp / name, data)
        sums[name] = hashlib.sha256(data).hexdigest()
    manifest["checksums"] = sums
    raw = json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8")
    _write(tmp / "manifest.json", raw)
    _fsync(tmp)
    shutil.rmtree(index_dir / gen, ignore_errors=True)
    os.replace(tmp, index_dir / gen)
    _fsync(index_dir)
    sha = hashlib.sha256(raw).hexdigest()
    ptr = index_dir / f".{POINTER}.{os.getpid()}.tmp"
    _write(ptr, json.dumps({"generation": gen, "manifest_sha256": sha, "check": _check(gen, sha)}).encode())
    os.replace(ptr, index_dir / POINTER)
    _fsync(index_dir)


def cleanup(index_dir: Path, keep: set[str]) -> None:
    """Remove generation folders other than `keep` and what interrupted builds left."""
    for p in Path(index_dir).iterdir():
        if (_GEN.fullmatch(p.name) and p.name not in keep) or p.name.startswith(".tmp-mgen-"):
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(f".{POINTER}."):
            p.unlink(missing_ok=True)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


