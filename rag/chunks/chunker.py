"""Paragraph chunks with exact source spans.

Chunks follow the paragraphs found by `rag.structure`: a long paragraph is cut at sentence
ends into pieces of about equal size, short paragraphs (standalone headings, one-line
paragraphs, editor's marks) join a neighbour of the same section, and no chunk ever
crosses an article. Every chunk satisfies `text == clean(raw[start:end], joins, start)`.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from rag.chunks.citation import Chunk
from rag.chunks.cleaning import clean, clean_map
from rag.documents import Document
from rag.chunks.structure import Article, Paragraph, parse, runin_heading


@dataclass(frozen=True)
class ChunkSettings:
    # ~360 CJK characters is about 300 e5 tokens: room for the context prefix inside the
    # 512-token window. Chosen by measurement on the dev sets (see README, "Chunk size").
    max_chars: int = 360
    min_chars: int = 80

    def id(self) -> str:
        return f"para-v2:max{self.max_chars}:min{self.min_chars}"


def chunk_id(source: str, start: int, end: int, text: str) -> str:
    h = hashlib.sha1(f"{source}\0{start}\0{end}\0{text}".encode("utf-8"))
    return h.hexdigest()[:16]


_SENT_END = re.compile(r"[。！？；!?;…]+[”’」』）)】》\"']*|\n")


@dataclass
class _Unit:
    start: int
    end: int
    joins: tuple[int, ...]
    text: str
    section: tuple[str, ...]
    paragraph: int
    kind: str


def chunk_document(doc: Document, settings: ChunkSettings = ChunkSettings()) -> list[Chunk]:
    chunks: list[Chunk] = []
    layout = doc.layout
    for a_no, art in enumerate(parse(doc.text, doc.headings or None)):
        for u in _units(doc.text, art, settings):
            section = list(u.section)
            extra = runin_heading(u.text)
            if extra and u.kind == "body":
                section.append(extra)
            chunks.append(Chunk(
                id=chunk_id(doc.source, u.start, u.end, u.text), source=doc.source,
                start=u.start, end=u.end, text=u.text, title=art.title, author=art.author,
                section=section, paragraph=u.paragraph, affiliation=art.affiliation,
                article=a_no, kind=u.kind, joins=list(u.joins)))
            if layout is not None:
                _place(chunks[-1], layout)
    return chunks


def _place(c: Chunk, layout) -> None:
    """Page, last page and boxes (PDF, OCR), block (DOCX, HTML) of a chunk, from its layout."""
    c.page, c.page_end, c.boxes = layout.locate(c.start, c.end)
    block = getattr(layout, "block", None)
    c.block = block(c.start, c.end) if block else ""


def _units(text: str, art: Article, s: ChunkSettings) -> list[_Unit]:
    pieces: list[_Unit] = []
    ordinal = 0
    for p in art.paragraphs:
        if p.kind == "body":
            ordinal += 1
        n = 0 if p.kind == "header" else max(ordinal, 1)
        pieces.extend(_split(text, p, n, s.max_chars))
    return _merge(text, pieces, s)


def _split(text: str, p: Paragraph, ordinal: int, max_chars: int) -> list[_Unit]:
    cleaned, idx = clean_map(text[p.start:p.end], p.joins, p.start)
    kind = "header" if p.kind == "header" else ("note" if p.kind == "note" else "body")
    if len(cleaned) <= max_chars or kind == "header":
        return [_Unit(p.start, p.end, p.joins, cleaned, p.section, ordinal, kind)]
    units = []
    for a, b in _cut_points(cleaned, max_chars):
        rs, re_ = idx[a], idx[b - 1] + 1
        joins = tuple(j for j in p.joins if rs <= j < re_)
        units.append(_Unit(rs, re_, joins, clean(text[rs:re_], joins, rs), p.section, ordinal, kind))
    return units


def _cut_points(s: str, max_chars: int) -> list[tuple[int, int]]:
    """Spans of `s` cut at sentence ends into about equal pieces no longer than max_chars."""
    sents = _sentences(s, max_chars)
    total = sum(b - a for a, b in sents)
    target = total / math.ceil(total / max_chars)
    out: list[tuple[int, int]] = []
    cur_a, cur_b = sents[0]
    for a, b in sents[1:]:
        if (cur_b - cur_a) >= target * 0.9 or (b - cur_a) > max_chars:
            out.append((cur_a, cur_b))
            cur_a = a
        cur_b = b
    out.append((cur_a, cur_b))
    return [(a, b) for a, b in (_strip(s, a, b) for a, b in out) if b > a]


def _strip(s: str, a: int, b: int) -> tuple[int, int]:
    while a < b and s[a].isspace():
        a += 1
    while b > a and s[b - 1].isspace():
        b -= 1
    return a, b


def _sentences(s: str, max_chars: int) -> list[tuple[int, int]]:
    spans, a = [], 0
    for m in _SENT_END.finditer(s):
        spans.append((a, m.end()))
        a = m.end()
    if a < len(s):
        spans.append((a, len(s)))
    out = []
    for a, b in spans:
        while b - a > max_chars:   # one overlong sentence: cut at a comma, else hard
            cut = max((s.rfind(c, a, a + max_chars) for c in "，,、："), default=-1)
            cut = cut + 1 if cut > a else a + max_chars
            out.append((a, cut))
            a = cut
        out.append((a, b))
    return out


def _merge(text: str, units: list[_Unit], s: ChunkSettings) -> list[_Unit]:
    """Join short units to a neighbour in the same section; notes go with what precedes."""
    out: list[_Unit] = []
    pending: _Unit | None = None
    for u in units:
        if pending is not None:
            if tuple(u.section[:len(pending.section)]) == pending.section:
                if len(pending.text) + len(u.text) + 1 <= s.max_chars and u.kind == "body":
                    u = _join(text, pending, u, keep="second")
                    pending = None
            if pending is not None:
                _flush(text, out, pending, s)
                pending = None
        if u.kind == "note" and out and out[-1].kind == "body" \
                and len(out[-1].text) + len(u.text) + 1 <= s.max_chars + s.min_chars:
            out[-1] = _join(text, out[-1], u, keep="first")
            continue
        if u.kind == "note":
            u.kind = "body"
        if u.kind == "body" and len(u.text) < s.min_chars:
            pending = u
            continue
        out.append(u)
    if pending is not None:
        _flush(text, out, pending, s)
    return out


def _flush(text: str, out: list[_Unit], pending: _Unit, s: ChunkSettings) -> None:
    """A short unit that could not join what follows joins what precedes, if it fits."""
    if out and out[-1].kind == "body" and out[-1].section == pending.section \
            and len(out[-1].text) + len(pending.text) + 1 <= s.max_chars:
        out[-1] = _join(text, out[-1], pending, keep="first")
    else:
        out.append(pending)


def _join(text: str, a: _Unit, b: _Unit, keep: str) -> _Unit:
    joins = a.joins + b.joins
    ref = a if keep == "first" else b
    return _Unit(a.start, b.end, joins, clean(text[a.start:b.end], joins, a.start),
                 ref.section, a.paragraph, "body")


def embed_text(c: Chunk) -> str:
    """What gets embedded and keyword-indexed: the passage plus where it stands.

    Nearly every question names a province, a year or an article; a bare paragraph does
    not say which article it belongs to, so the byline, title and heading path go first.
    """
    where = " ".join(x for x in (c.affiliation, c.author) if x)
    head = "《" + c.title + "》" if c.title else ""
    if c.kind == "header":
        # the byline answers "who wrote it, in what post": say so in words
        by = f"作者：{c.author}" + (f"（{c.affiliation}）" if c.affiliation else "") if c.author else ""
        return "\n".join(p for p in (head, by, c.text) if p)
    parts = [p for p in (where, head, " > ".join(c.section)) if p]
    return ("\n".join(parts) + "\n" + c.text) if parts else c.text
