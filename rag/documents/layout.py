"""Where the characters of a document stand: pages and boxes (PDF, OCR) or blocks (DOCX, HTML).

A `Layout` is stored as JSON text in the chunk store (`files.layout`) and read back with
`from_json`. `locate(start, end)` gives `(page, page_end, boxes)` for a span of the
canonical text: `boxes` holds one `[page, x0, y0, x1, y1]` per line piece, in PDF points
with the origin at the page's bottom-left (for OCR: pixels × 72 / dpi), covering exactly
the characters of the span that have a box (inserted spaces and line breaks have none).
`block(start, end)` names the DOCX paragraph / table cell or HTML block where a span starts.

Storage: per line `[start, page, y0, y1, [x0, x1, x0, x1, ...]]` with one pair per text
character of the line (`null` pair → no box). Boxes are rounded to 0.1 pt: a 35-page
journal issue of ~60,000 characters is ~0.9 MB of JSON.
"""
from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass
class LineBoxes:
    start: int                      # offset of the line's first character in the text
    page: int                       # 1-based
    y0: float
    y1: float
    xs: list[float | None]          # x0, x1 per character: len == 2 * characters

    @property
    def end(self) -> int:
        return self.start + len(self.xs) // 2


@dataclass
class Layout:
    """Pages and character boxes of a paged document, or blocks of a markup document."""
    lines: list[LineBoxes] = field(default_factory=list)           # sorted by start
    pages: list[tuple[float, float]] = field(default_factory=list)  # (width, height) in points
    page_starts: list[int] = field(default_factory=list)            # text offset where page i+1 starts
    blocks: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, label), sorted
    text_layer: list[str] = field(default_factory=list)             # per page: "pdf" | "ocr"

    def __post_init__(self) -> None:
        self._starts = [ln.start for ln in self.lines]
        self._bstarts = [b[0] for b in self.blocks]

    # ---- queries
    def page_of(self, offset: int) -> int | None:
        if not self.page_starts:
            return None
        return max(1, bisect.bisect_right(self.page_starts, offset))

    def locate(self, start: int, end: int) -> tuple[int | None, int | None, list[list[float]]]:
        """(page, page_end, boxes) of text[start:end]; (None, None, []) without pages."""
        if not self.page_starts or end <= start:
            return None, None, []
        boxes: list[list[float]] = []
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        while i < len(self.lines) and self.lines[i].start < end:
            ln = self.lines[i]
            a, b = max(start, ln.start), min(end, ln.end)
            xs = [(ln.xs[2 * (k - ln.start)], ln.xs[2 * (k - ln.start) + 1]) for k in range(a, b)]
            xs = [x for x in xs if x[0] is not None]
            if xs:
                boxes.append([ln.page, min(x[0] for x in xs), ln.y0, max(x[1] for x in xs), ln.y1])
            i += 1
        if boxes:
            return boxes[0][0], boxes[-1][0], boxes
        p0 = self.page_of(start)
        return p0, self.page_of(max(start, end - 1)), []

    def block(self, start: int, end: int) -> str:
        """The label of the block holding `start` (DOCX paragraph or cell, HTML block)."""
        i = bisect.bisect_right(self._bstarts, start) - 1
        if 0 <= i < len(self.blocks) and self.blocks[i][0] <= start < max(self.blocks[i][1], start + 1):
            return self.blocks[i][2]
        return ""

    # ---- storage
    def to_json(self) -> str:
        return json.dumps({
            "v": 1, "pages": [[round(w, 1), round(h, 1)] for w, h in self.pages],
            "page_starts": self.page_starts, "text_layer": self.text_layer,
            "lines": [[ln.start, ln.page, round(ln.y0, 1), round(ln.y1, 1),
                       [None if x is None else round(x, 1) for x in ln.xs]] for ln in self.lines],
            "blocks": [list(b) for b in self.blocks]}, ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=16)
def from_json(s: str) -> Layout:
    d = json.loads(s)
    return Layout(lines=[LineBoxes(a, p, y0, y1, xs) for a, p, y0, y1, xs in d.get("lines", [])],
                  pages=[tuple(p) for p in d.get("pages", [])], page_starts=d.get("page_starts", []),
                  blocks=[tuple(b) for b in d.get("blocks", [])], text_layer=d.get("text_layer", []))
