"""The corpus: find the files under a folder and read each with the reader for its suffix.

A file no reader accepts is skipped with a one-line warning naming it and the reason; the
rest of the corpus is read. Per-file limits are settings (rag.settings).
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

from rag.documents.base import Document, SkipDocument
from rag.documents.registry import reader_for_suffix, suffixes as _suffixes
from rag.errors import CorpusError, MissingExtra

MAX_FILE_BYTES = 200 * 1024 * 1024
METADATA_FILES = ("metadata.csv",)   # corpus metadata, never indexed as a document


def is_document_name(source: str, suffixes: tuple[str, ...] | None = None) -> bool:
    """Whether a corpus-relative path names something the corpus indexes: no hidden part,
    not the corpus metadata, a suffix some reader takes."""
    parts = source.split("/")
    return (not any(p.startswith(".") for p in parts) and source not in METADATA_FILES
            and os.path.splitext(parts[-1])[1].lower() in (suffixes or _suffixes()))


def iter_files(root: Path, suffixes: tuple[str, ...] | None = None) -> Iterator[tuple[str, str, os.stat_result]]:
    """(source, path, stat) of each file under `root` with a supported suffix, sorted, each
    real file once (symlink loops safe). Strings, not pathlib: building and relativising a
    Path per file was 5 of the 7 s an unchanged 90k-file corpus took to scan (cProfile,
    bench_scale at 1M chunks)."""
    suffixes = suffixes or _suffixes()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()

    def walk(d: str, rel: str) -> Iterator[tuple[str, str, os.stat_result]]:
        try:
            st = os.stat(d)
        except OSError:
            return
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            return
        seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            warn(f"cannot read folder {d}: {e.strerror}")
            return
        for e in entries:
            name = e.name
            if name.startswith(".") or (not rel and name in METADATA_FILES):
                continue
            source = f"{rel}/{name}" if rel else name
            try:
                if e.is_dir():
                    yield from walk(e.path, source)
                    continue
                if os.path.splitext(name)[1].lower() not in suffixes:
                    continue
                if e.is_file():
                    fst = e.stat()
                    fkey = (fst.st_dev, fst.st_ino)
                    if fkey not in seen_files:
                        seen_files.add(fkey)
                        yield source, e.path, fst
                elif e.is_symlink():
                    warn(f"skipping {e.path}: broken or looping symbolic link")
            except OSError:
                warn(f"skipping {e.path}: cannot stat (broken link?)")

    yield from walk(os.fspath(root), "")


def iter_paths(root: Path, suffixes: tuple[str, ...] | None = None) -> Iterator[Path]:
    """Files under `root` with a supported suffix, sorted, each real file once (symlink loops safe)."""
    for _source, path, _stat in iter_files(root, suffixes):
        yield Path(path)


def relative_source(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def read_document(root: Path, path: Path) -> Document | None:
    """Read one file with the reader for its suffix; None (with a warning) when it is unusable."""
    source = relative_source(root, path)
    reader = reader_for_suffix().get(path.suffix.lower())
    if reader is None:
        warn(f"skipping {source}: no reader for {path.suffix or 'files without a suffix'}")
        return None
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            warn(f"skipping {source}: larger than {MAX_FILE_BYTES // 2**20} MB")
            return None
        data = path.read_bytes()
    except OSError as e:
        warn(f"skipping {source}: cannot read ({e.strerror or e})")
        return None
    try:
        return reader.read(path, source, data, hashlib.sha256(data).hexdigest())
    except (SkipDocument, MissingExtra) as e:
        warn(f"skipping {source}: {e}")
    except Exception as e:  # a reader's bug must not cost the rest of the corpus
        warn(f"skipping {source}: {reader.name} reader failed ({type(e).__name__}: {e})")
    return None


def load_corpus(root: str | Path, on_doc: Callable[[Document], None] | None = None) -> list[Document]:
    """All readable documents under `root`; an empty result is an error."""
    root = Path(root)
    if not root.exists():
        raise CorpusError(f"corpus folder not found: {root}")
    if not root.is_dir():
        raise CorpusError(f"corpus is not a folder: {root}")
    docs = []
    for p in iter_paths(root):
        d = read_document(root, p)
        if d is not None:
            docs.append(d)
            if on_doc:
                on_doc(d)
    if not docs:
        raise CorpusError(f"no readable documents ({', '.join(_suffixes())}) in {root}")
    return docs


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)
