"""Text flow: positioned glyphs of pages → one canonical text with a box for each character.

Shared by the PDF text layer and OCR. No PDF library rebuilds Chinese paragraphs, so this
module does:

- lines: glyphs in content order, a new line where the baseline moves, x runs backwards or
  a gap wider than 1.5 em opens (a column gutter); glyphs sorted by x within a line, so
  quote marks a PDF stores out of order come back in reading order;
- spaces: one where the PDF has a space character (titles such as "尽职履责护稳定 喜迎党的
  二十大" keep theirs) or, between Latin words, a gap > 0.2 em; between two CJK
  characters only a gap > 0.6 em (a title's space in a scan: justified Chinese text
  spaces its characters far less);
- columns: gutters found per page as x ranges in the middle 30–70% that no narrow line
  crosses; reading order is band by band (a full-width line ends a band), column by column;
- running headers and footers: lines in the top/bottom 9% band whose text, digits masked,
  repeats on half the pages (and lone page numbers there) are not body text;
- paragraphs: a new paragraph ("\\n\\n") on a font-size change, a vertical gap 1.35× the
  usual line pitch, a first-line indent or a short previous line; consecutive centred lines
  (titles, bylines) stay one block with "\\n"; wrapped lines join with nothing between CJK
  characters and one space otherwise. Pages are separated by "\\n\\f\\n"; a paragraph cut by
  a page break is rejoined by `rag.chunks.structure` (no sentence end → joined).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from statistics import median

from rag.documents.layout import Layout, LineBoxes

PAGE_SEP = "\n\f\n"
WIDE_GAP = 0.6      # em: a gap this wide is a space even between CJK characters (OCR'd titles)
BAND = 0.09


@dataclass
class Glyph:
    ch: str
    x0: float
    y0: float
    x1: float
    y1: float
    size: float
    space: bool = False         # a space character (not one the reader generated) stood before it


@dataclass
class TextLine:
    glyphs: list[Glyph]
    ordered: bool = False       # glyphs already in reading order (OCR): keep it
    text: str = ""
    xs: list[float | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.ordered:
            self.glyphs.sort(key=lambda g: g.x0)
        self.x0 = min(g.x0 for g in self.glyphs)
        self.x1 = max(g.x1 for g in self.glyphs)
        self.y0 = min(g.y0 for g in self.glyphs)
        self.y1 = max(g.y1 for g in self.glyphs)
        self.size = median(g.size for g in self.glyphs) or (self.y1 - self.y0) or 10.0
        chars: list[str] = []
        xs: list[float | None] = []
        prev = None
        for g in self.glyphs:
            gap = g.x0 - prev.x1 if prev is not None else 0.0
            if prev is not None and (g.space or gap > WIDE_GAP * self.size or gap > 0.2 * self.size
                                     and not (_cjkish(prev.ch[-1]) and _cjkish(g.ch[0]))):
                chars.append(" ")
                xs += [None, None]
            for c in g.ch:
                chars.append(c)
                xs += [g.x0, g.x1]
            prev = g
        self.text, self.xs = "".join(chars), xs


@dataclass
class Page:
    width: float
    height: float
    lines: list[TextLine]
    layer: str = "pdf"          # pdf | ocr


def is_cjk(ch: str) -> bool:
    """CJK ideographs, kana, CJK and full-width punctuation (as rag.chunks.cleaning counts them;
    repeated here because documents come before chunks)."""
    o = ord(ch)
    return (0x3000 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF
            or 0x20000 <= o <= 0x3FFFF)


def _cjkish(ch: str) -> bool:
    return is_cjk(ch) or ch in "“”‘’—…·"


def lines_from_glyphs(glyphs: list[Glyph]) -> list[TextLine]:
    """Group glyphs in content order into lines (see the module docstring)."""
    out: list[TextLine] = []
    cur: list[Glyph] = []
    for g in glyphs:
        if cur:
            last = cur[-1]
            size = max(last.size, g.size, 1.0)
            base_moved = abs(g.y0 - last.y0) > 0.5 * size and abs((g.y0 + g.y1) - (last.y0 + last.y1)) > 0.6 * size
            if base_moved or g.x0 < last.x0 - size or g.x0 - last.x1 > 1.5 * size:
                out.append(TextLine(cur))
                cur = []
        cur.append(g)
    if cur:
        out.append(TextLine(cur))
    return [ln for ln in out if ln.text.strip()]


# ------------------------------------------------------------------ columns and order

def _gutters(lines: list[TextLine], width: float) -> list[tuple[float, float]]:
    narrow = [ln for ln in lines if ln.x1 - ln.x0 < 0.6 * width]
    if len(narrow) < 6:
        return []
    spans = sorted((ln.x0, ln.x1) for ln in narrow)
    gaps, reach = [], spans[0][1]
    for a, b in spans[1:]:
        if a > reach:
            gaps.append((reach, a))
        reach = max(reach, b)
    em = median(ln.size for ln in narrow)
    out = []
    for a, b in gaps:
        mid = (a + b) / 2
        if 0.3 * width <= mid <= 0.7 * width and b - a >= 0.5 * em:
            left = sum(1 for ln in narrow if ln.x1 <= a)
            right = sum(1 for ln in narrow if ln.x0 >= b)
            if left >= 3 and right >= 3:
                out.append((a, b))
    return out


def reading_order(lines: list[TextLine], width: float) -> list[tuple[int, TextLine]]:
    """(column, line) in reading order; column -1 for lines spanning a gutter."""
    gut = _gutters(lines, width)
    top_down = sorted(lines, key=lambda ln: (-ln.y1, ln.x0))
    if not gut:
        return [(0, ln) for ln in top_down]
    cuts = [(a + b) / 2 for a, b in gut]

    def col(ln: TextLine) -> int:
        for k, (a, b) in enumerate(gut):
            if ln.x0 < b and ln.x1 > a:
                return -1
        return sum(1 for c in cuts if ln.x0 > c)

    out: list[tuple[int, TextLine]] = []
    band: list[tuple[int, TextLine]] = []
    for ln in top_down:
        c = col(ln)
        if c == -1:
            out.extend(sorted(band, key=lambda t: t[0]))   # stable: y order within a column
            band = []
            out.append((c, ln))
        else:
            band.append((c, ln))
    out.extend(sorted(band, key=lambda t: t[0]))
    return out


# ------------------------------------------------------------------ headers and footers

_DIGITS = re.compile(r"\d+")
_PAGE_NO = re.compile(r"^[\s\-–—·第页()（）#/|]*$")


def _key(ln: TextLine) -> str:
    return _DIGITS.sub("#", ln.text.replace(" ", ""))


def _in_band(ln: TextLine, height: float) -> bool:
    return ln.y0 >= height * (1 - BAND) or ln.y1 <= height * BAND


def running_lines(pages: list[Page]) -> set[tuple[int, int]]:
    """(page index, line index) of running headers, footers and page numbers."""
    counts: dict[str, int] = {}
    for p in pages:
        for k in {_key(ln) for ln in p.lines if _in_band(ln, p.height)}:
            counts[k] = counts.get(k, 0) + 1
    need = max(2, (len(pages) + 1) // 2)
    out = set()
    for i, p in enumerate(pages):
        for j, ln in enumerate(p.lines):
            if _in_band(ln, p.height):
                k = _key(ln)
                if counts.get(k, 0) >= need or (_PAGE_NO.match(k) and "#" in k):
                    out.add((i, j))
    return out


# ------------------------------------------------------------------ paragraphs and text

def _separator(a: TextLine, b: TextLine, ctx: dict) -> str:
    """What stands between consecutive lines a → b of a page: "", " ", "\\n" or "\\n\\n"."""
    size = max(a.size, 1.0)
    if abs(b.size - a.size) > 0.15 * size:
        return "\n\n"
    same_col = ctx["col_a"] == ctx["col_b"]
    left, right = ctx["bounds"].get(ctx["col_b"], (b.x0, b.x1))
    centre = (left + right) / 2

    def centred(ln: TextLine) -> bool:
        return ln.x0 > left + ln.size and ln.x1 < right - ln.size \
            and abs((ln.x0 + ln.x1) / 2 - centre) < ln.size

    if same_col and b.y1 <= a.y0 + 0.5 * size:
        pitch = a.y0 - b.y0
        if pitch > ctx["pitch"] * 1.35 + 0.5:
            return "\n\n"
    elif same_col:
        return "\n\n"                        # moved up or sideways inside a column: a new block
    if centred(a) and centred(b):
        return "\n"
    if centred(b) and abs((a.x0 + a.x1) / 2 - centre) < a.size and a.text[-1] not in "。！？；：":
        return "" if _cjkish(a.text[-1]) and _cjkish(b.text[0]) else " "   # a wrapped centred line
    if b.x0 > left + 0.8 * b.size:
        return "\n\n"                        # first-line indent (or a centred line)
    if a.x1 < right - 1.5 * size and same_col:
        return "\n\n"                        # short last line of a paragraph
    if _cjkish(a.text[-1]) and _cjkish(b.text[0]):
        return ""
    if a.text.endswith("-") and b.text[:1].isalpha():
        return ""
    return " "


def _bounds(order: list[tuple[int, TextLine]]) -> dict[int, tuple[float, float]]:
    cols: dict[int, list[TextLine]] = {}
    for c, ln in order:
        cols.setdefault(c, []).append(ln)
    out = {}
    for c, lns in cols.items():
        x0s = sorted(ln.x0 for ln in lns)
        x1s = sorted(ln.x1 for ln in lns)
        out[c] = (x0s[len(x0s) // 10], x1s[(len(x1s) * 9) // 10])
    return out


def _pitch(order: list[tuple[int, TextLine]]) -> float:
    ds = [a.y0 - b.y0 for (ca, a), (cb, b) in zip(order, order[1:])
          if ca == cb and b.y0 < a.y0 and abs(a.size - b.size) < 0.15 * a.size]
    if not ds:
        return 1.4 * median(ln.size for _, ln in order) if order else 14.0
    return median(ds)


def flow(pages: list[Page]) -> tuple[str, Layout]:
    """The canonical text of `pages` and its layout (see the module docstring)."""
    drop = running_lines(pages)
    parts: list[str] = []
    pos = 0
    lines: list[LineBoxes] = []
    starts: list[int] = []
    for i, p in enumerate(pages):
        if i:
            parts.append(PAGE_SEP)
            pos += len(PAGE_SEP)
        starts.append(pos)
        keep = [ln for j, ln in enumerate(p.lines) if (i, j) not in drop]
        order = reading_order(keep, p.width)
        ctx = {"bounds": _bounds(order), "pitch": _pitch(order)}
        prev: tuple[int, TextLine] | None = None
        for c, ln in order:
            if prev is not None:
                ctx["col_a"], ctx["col_b"] = prev[0], c
                sep = _separator(prev[1], ln, ctx)
                parts.append(sep)
                pos += len(sep)
            lines.append(LineBoxes(pos, i + 1, round(ln.y0, 1), round(ln.y1, 1),
                                   [None if x is None else round(x, 1) for x in ln.xs]))
            parts.append(ln.text)
            pos += len(ln.text)
            prev = (c, ln)
    layout = Layout(lines=lines, pages=[(p.width, p.height) for p in pages], page_starts=starts,
                    text_layer=[p.layer for p in pages])
    return "".join(parts), layout
