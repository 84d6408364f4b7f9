"""The on-disk layout of an index: immutable segments, commit points, CURRENT, the lock.

Layout of an index folder (format 2; Lucene's design):
  CURRENT              {"generation": "gen-000007", "manifest_sha256": ..., "check": ...}:
                       replaced atomically by a commit; it pins the manifest's checksum, and
                       the manifest pins every file's checksum and size
  gen-000007/          a commit point: manifest.json (the live segments, the files and the
                       segment holding each, counts, checksums), words.txt (the tokenizer's
                       extra words with how many files quote each), del/seg-*.npy (the
                       deleted rows of each segment)
  segments/seg-000003/ one immutable segment (rag.index.segment): store.sqlite, vectors.npy
                       (+ IVF lists when large), bm25/ postings, cite/ postings, segment.json
  embed-cache/         vectors embedded by a build that has not committed yet (resume)
  .lock                held by the one writer

A build writes new segments beside the old ones, then a new commit point, flushes files and
folders to disk, then replaces CURRENT; a reader sees the old commit or the new one, never
a mix. A build killed at any point leaves the previous commit current and intact (segments
are never modified); the next build removes what it left behind (`.tmp-*`, commit points
CURRENT never named, segments no kept commit lists).
`RAG_CRASH_AT=<point>` (test hook, see CRASH_POINTS) makes a build kill itself there.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rag import settings
from rag.errors import IndexBusy, IndexDamaged, RagError

DEFAULT_INDEX = "index"
# where a build can be told to die (RAG_CRASH_AT), in the order it passes them
CRASH_POINTS = ("after-embed", "after-segment", "during-merge", "after-merge", "after-fsync",
                "after-rename", "after-switch")
_GEN = re.compile(r"gen-\d{6,}")


def _crash_point(name: str) -> None:
    """Test hook: die here as `kill -9` or a power cut would, when RAG_CRASH_AT names this point."""
    if os.environ.get("RAG_CRASH_AT", settings.get().crash_at) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def default_index_dir() -> Path:
    return Path(settings.get().index or DEFAULT_INDEX)


def _damaged(index_dir: Path, what: str) -> IndexDamaged:
    return IndexDamaged(f"index {index_dir} is damaged: {what}; "
                    f"rebuild it with: rag build --rebuild --index {index_dir}")


def _pointer_check(gen: str, manifest_sha: str) -> str:
    return hashlib.sha256(f"{gen}\n{manifest_sha}".encode()).hexdigest()[:16]


def _read_pointer(index_dir: Path) -> dict | None:
    """CURRENT as {"generation", "manifest_sha256"} (the checksum is None in a CURRENT written
    before checksums were recorded there); None when there is no CURRENT."""
    _require_folder(index_dir)
    try:
        raw = (index_dir / "CURRENT").read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _damaged(index_dir, f"CURRENT is unreadable ({e.strerror or e})") from None
    try:
        ptr = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise _damaged(index_dir, "CURRENT is not valid JSON") from None
    gen = ptr.get("generation") if isinstance(ptr, dict) else None
    if not isinstance(gen, str) or not _GEN.fullmatch(gen):
        raise _damaged(index_dir, "CURRENT names no valid generation")
    if set(ptr) == {"generation"}:
        return {"generation": gen, "manifest_sha256": None}
    sha = ptr.get("manifest_sha256")
    if set(ptr) != {"generation", "manifest_sha256", "check"} or not isinstance(sha, str) \
            or ptr.get("check") != _pointer_check(gen, sha):
        raise _damaged(index_dir, "CURRENT fails its checksum")
    return {"generation": gen, "manifest_sha256": sha}


def read_current(index_dir: Path) -> str | None:
    ptr = _read_pointer(Path(index_dir))
    return ptr["generation"] if ptr else None


def _current_or_none(index_dir: Path) -> str | None:
    """The current generation, or None when there is none or CURRENT is damaged (rebuilds)."""
    try:
        return read_current(index_dir)
    except RagError:
        return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            with open(p, "rb+") as f:
                os.fsync(f.fileno())
    for d in sorted({p.parent for p in folder.rglob("*")} | {folder}, reverse=True):
        _fsync_dir(d)


def _switch(index_dir: Path, gen: str, manifest_sha: str) -> None:
    tmp = index_dir / f".CURRENT.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"generation": gen, "manifest_sha256": manifest_sha,
                   "check": _pointer_check(gen, manifest_sha)}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, index_dir / "CURRENT")
    _fsync_dir(index_dir)


def _next_generation(index_dir: Path) -> str:
    nums = [int(p.name[4:]) for p in index_dir.glob("gen-*") if p.name[4:].isdigit()]
    return f"gen-{max(nums, default=0) + 1:06d}"


def _previous_generation(index_dir: Path, gen: str) -> str | None:
    """The newest generation folder older than `gen` (what readers may still be reading)."""
    older = [p.name for p in index_dir.glob("gen-*") if _GEN.fullmatch(p.name) and p.name < gen]
    return max(older, default=None)


def _cleanup(index_dir: Path, keep: set[str], known: dict[str, dict] | None = None) -> None:
    """Remove commit points other than `keep` (the current one and the one before it, which
    readers opened before the switch may still be reading), commit points an interrupted
    build renamed but never switched to, stray temporary files, and segments no kept commit
    point lists. `known`: manifests the caller holds, by generation (parsing the two ~20 MB
    manifests of a 1M-chunk index again was 1.2 s of every update)."""
    known = known or {}
    for p in index_dir.iterdir():
        if p.name.startswith("gen-") and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(".CURRENT.") or p.name.startswith(".tmp-gen-"):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    seg_root = index_dir / "segments"
    if not seg_root.is_dir():
        return
    used: set[str] = set()
    for g in keep:
        try:
            m = known.get(g) or json.loads((index_dir / g / "manifest.json").read_text(encoding="utf-8"))
            used |= {s["name"] for s in m.get("segments", [])}
        except (OSError, ValueError, KeyError, TypeError):
            if g == max(keep):          # the current commit unreadable: remove nothing
                return
    for p in seg_root.iterdir():
        if p.name not in used:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _require_folder(index_dir: Path) -> None:
    """The one "is not a folder" message, for the index path or any folder above it."""
    for p in (index_dir, *index_dir.parents):
        if p.exists():
            if not p.is_dir():
                where = "" if p == index_dir else f" ({p} is a file)"
                raise RagError(f"index {index_dir} is not a folder{where}; choose a folder with --index")
            return


@contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    _require_folder(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusy(f"another build is already writing index {index_dir}; "
                           f"wait for it to finish") from None
        yield
    finally:
        os.close(fd)


