"""The `.txt`/`.md` reader: detect the encoding, decode exactly once.

`Document.text` is what `open(path, encoding=doc.encoding, newline="")` returns: newlines
are never translated, so offsets into it are offsets into the file as any editor reads it.
"""
from __future__ import annotations

import codecs
from pathlib import Path

from rag.documents.base import Document, SkipDocument

SUFFIXES = (".txt", ".md")

# Candidate encodings for text that is not valid UTF-8. Restricting the detector to these
# keeps it from "finding" exotic code pages in short Chinese files.
_LEGACY = ["gb18030", "big5", "utf_16", "shift_jis", "euc_kr", "cp1252"]


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


class PlainTextReader:
    """Plain text and Markdown in any common encoding (UTF-8/16/32 with or without BOM, GB18030, Big5…)."""
    name = "plaintext"
    suffixes = SUFFIXES

    def read(self, path: Path, source: str, data: bytes, sha256: str) -> Document:
        decoded = decode(data)
        if decoded is None:
            raise SkipDocument("binary or undecodable")
        enc, text = decoded
        return Document(source, path, enc, text, sha256)
