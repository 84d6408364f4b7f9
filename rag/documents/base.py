"""What every reader produces: one `Document` with one canonical text.

Offsets everywhere in the project are `str` indices into `Document.text`. For `.txt`/`.md`
that is the file as `open(path, encoding=doc.encoding, newline="")` returns it; for paged
formats it is the reader's text with pages joined by "\\f", and `layout` maps any span of it
back to pages and boxes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from rag.errors import RagError


class SkipDocument(RagError):
    """A file a reader cannot use: skipped with a one-line warning naming the reason."""


@dataclass(frozen=True)
class Heading:
    """A heading the format itself marks (DOCX styles, HTML <h1>-<h6>): no regex guessing."""
    start: int
    end: int
    level: int


@runtime_checkable
class Layout(Protocol):
    """Where the characters of a paged document stand (rag.documents.layout implements it)."""

    def locate(self, start: int, end: int) -> tuple[int | None, int | None, list[list[float]]]:
        """(page, page_end, boxes [[page, x0, y0, x1, y1], ...]) of text[start:end]."""
        ...

    def to_json(self) -> str: ...


@dataclass(frozen=True)
class Document:
    source: str       # path relative to the corpus root, with "/" separators
    path: Path
    encoding: str     # text files: the codec that reproduces `text` with newline=""
    text: str         # the canonical text every offset points into
    sha256: str       # of the raw bytes, so unchanged files are recognised cheaply
    reader: str = "plaintext"
    layout: Layout | None = None
    headings: tuple[Heading, ...] = ()
    meta: dict = field(default_factory=dict)   # title, author, … from the file's properties


@runtime_checkable
class Reader(Protocol):
    """Turns the bytes of one file into a Document, or raises SkipDocument."""
    name: str
    suffixes: tuple[str, ...]

    def read(self, path: Path, source: str, data: bytes, sha256: str) -> Document: ...
