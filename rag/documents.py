"""Corpus reading: find documents, detect their encoding, decode them exactly once.

Offsets everywhere in the project are `str` indices into `Document.text`, which is what
`open(path, encoding=doc.encoding, newline="")` returns: newlines are never translated.
"""
from __future__ import annotations

import codecs
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from rag.errors import RagError

SUFFIXES = (".txt", ".md")
MAX_FILE_BYTES = 200 * 1024 * 1024

# Candidate encodings for text that is not valid UTF-8. Restricting the detector to these
# keeps it from "finding" exotic code pages in short Chinese files.
_LEGACY = ["gb18030", "big5", "utf_16", "shift_jis", "euc_kr", "cp1252"]


@dataclass(frozen=True)
class Document:
    source: str       # path relative to the corpus root, with "/" separators
    path: Path
    encoding: str     # Python codec name that reproduces `text` with newline=""
    text: str
    sha256: str       # of the raw bytes, so unchanged files are recognised cheaply


def detect_encoding(data: bytes) -> str | None:
    """The codec that decodes `data`, or None when it is binary or undecodable."""
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return enc
    if b"\x00" in data:
        return None
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    results = from_bytes(data, cp_isolation=_LEGACY)
    best = results.best()
    if best is None:
        return None
    # Chinese first: on a tie (common in short files, e.g. GB bytes that are also valid
    # EUC-KR) prefer the GB family over whatever code page happened to be listed first.
    for r in results:
        if r.encoding.lower() in ("gb18030", "gbk", "gb2312") \
                and r.chaos <= best.chaos and r.coherence >= best.coherence:
            best = r
            break
    enc = best.encoding.lower().replace("-", "_")
    return "gb18030" if enc in ("gb2312", "gbk", "gb18030", "hz") else enc


def decode(data: bytes) -> tuple[str, str] | None:
    """(encoding, text) with newlines kept as in the file, or None if not text."""
    enc = detect_encoding(data)
    if enc is None:
        return None
    try:
        text = data.decode(enc)
    except (UnicodeDecodeError, LookupError):
        return None
    if _looks_binary(text):
        return None
    return enc, text


def _looks_binary(text: str) -> bool:
    if not text:
        return False
    controls = sum(1 for c in text[:4096] if ord(c) < 32 and c not in "\t\n\r\f\v")
    return controls > max(2, len(text[:4096]) // 100)


def iter_paths(root: Path, suffixes: tuple[str, ...] = SUFFIXES) -> Iterator[Path]:
    """Files under `root` with a supported suffix, sorted, each real file once (symlink loops safe)."""
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()

    def walk(d: Path) -> Iterator[Path]:
        try:
            st = d.stat()
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
            if e.name.startswith("."):
                continue
            p = Path(e.path)
            try:
                if e.is_dir():
                    yield from walk(p)
                elif e.is_file() and p.suffix.lower() in suffixes:
                    fst = p.stat()
                    fkey = (fst.st_dev, fst.st_ino)
                    if fkey not in seen_files:
                        seen_files.add(fkey)
                        yield p
                elif e.is_symlink() and p.suffix.lower() in suffixes:
                    warn(f"skipping {p}: broken or looping symbolic link")
            except OSError:
                warn(f"skipping {p}: cannot stat (broken link?)")

    yield from walk(root)


def relative_source(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def read_document(root: Path, path: Path) -> Document | None:
    """Read and decode one file; None (with a warning) when it is not usable text."""
    source = relative_source(root, path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            warn(f"skipping {source}: larger than {MAX_FILE_BYTES // 2**20} MB")
            return None
        data = path.read_bytes()
    except OSError as e:
        warn(f"skipping {source}: cannot read ({e.strerror or e})")
        return None
    decoded = decode(data)
    if decoded is None:
        warn(f"skipping {source}: binary or undecodable")
        return None
    enc, text = decoded
    return Document(source, path, enc, text, hashlib.sha256(data).hexdigest())


def load_corpus(root: str | Path, on_doc: Callable[[Document], None] | None = None) -> list[Document]:
    """All readable documents under `root`; an empty result is an error."""
    root = Path(root)
    if not root.exists():
        raise RagError(f"corpus folder not found: {root}")
    if not root.is_dir():
        raise RagError(f"corpus is not a folder: {root}")
    docs = []
    for p in iter_paths(root):
        d = read_document(root, p)
        if d is not None:
            docs.append(d)
            if on_doc:
                on_doc(d)
    if not docs:
        raise RagError(f"no readable .txt/.md documents in {root}")
    return docs


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)
