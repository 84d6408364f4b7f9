"""The one citation record: where a passage stands in its document.

Chunks, search results, citation-lookup matches, the chunk store and every writer (JSONL,
CSV, the UI) use these fields and only these; a new field (say, `page`) is one line here
and flows everywhere: the store's columns and the writers' keys are derived from it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields


@dataclass(kw_only=True)
class Citation:
    source: str                  # path relative to the corpus root, "/" separators
    start: int                   # [start, end): str offsets into the document's canonical text
    end: int
    text: str                    # clean(raw[start:end], joins, start): the documented cleaning
    title: str = ""
    author: str = ""
    affiliation: str = ""
    section: list[str] = field(default_factory=list)   # heading path
    paragraph: int = 0           # ordinal of the paragraph in its article
    article: int = 0             # ordinal of the article within its file
    page: int | None = None      # paged documents: 1-based first and last page
    page_end: int | None = None
    boxes: list[list[float]] = field(default_factory=list)   # [page, x0, y0, x1, y1] in PDF points
    block: str = ""              # DOCX paragraph/table cell, HTML block: where on the page it is

    def citation(self) -> dict:
        """The citation fields alone, JSON-ready."""
        return {f.name: _copy(getattr(self, f.name)) for f in CITATION_FIELDS}


@dataclass(kw_only=True)
class Chunk(Citation):
    id: str                      # stable for an unchanged file
    kind: str = "body"           # header | body
    joins: list[int] = field(default_factory=list)   # raw offsets of page-break joins

    def to_dict(self) -> dict:
        return {f.name: _copy(getattr(self, f.name)) for f in CHUNK_FIELDS}


def _copy(value):
    return value.copy() if isinstance(value, (list, dict)) else value


CITATION_FIELDS = fields(Citation)
CHUNK_FIELDS = fields(Chunk)
# fields stored as JSON text in SQLite (lists)
JSON_FIELDS = frozenset(f.name for f in CHUNK_FIELDS if f.name in ("section", "boxes", "joins"))


def encode_field(name: str, value):
    return json.dumps(value, ensure_ascii=False) if name in JSON_FIELDS else value


def decode_field(name: str, value):
    if name in JSON_FIELDS:
        return json.loads(value) if value else []
    return value
