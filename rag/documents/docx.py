"""Word `.docx` through python-docx, walking the body in order so tables are read too
(`Document.paragraphs` skips them). Heading styles give the structure (no regex guessing);
headers, footers and footnotes are not body text.

Canonical text: paragraphs separated by a blank line; a table is one block, a row per line,
cells separated by a tab (cleaning turns both into single spaces). The layout names each
paragraph or cell (`block`: "paragraph 12", "table 1 row 3 cell 2"). A file that is not a
zip, is truncated, or would unzip to more than `RAG_MAX_UNZIPPED` bytes is skipped.
"""
from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from rag.documents.base import Document, Heading, SkipDocument
from rag.documents.layout import Layout
from rag.errors import require

_HEADING = re.compile(r"^(?:heading|标题)\s*(\d)$", re.I)


def check_zip(data: bytes, limit: int) -> None:
    """Refuse what is not a zip, is truncated, or unzips past `limit` (a zip bomb)."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        total = sum(i.file_size for i in z.infolist())
        bad = z.testzip() if total <= limit else None
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, OSError, RuntimeError) as e:
        raise SkipDocument(f"not a readable .docx (damaged or truncated zip: {str(e)[:60]})") from None
    except Exception as e:      # zlib errors of a corrupt member
        raise SkipDocument(f"not a readable .docx ({type(e).__name__})") from None
    if total > limit:
        raise SkipDocument(f"unzips to {total // 2**20} MiB, more than RAG_MAX_UNZIPPED={limit // 2**20} MiB "
                           "(zip bomb?)")
    if bad is not None:
        raise SkipDocument(f"damaged .docx (member {bad} fails its checksum)")


def heading_level(paragraph) -> int:
    style = paragraph.style
    while style is not None:
        name = (style.name or "").strip()
        if name.lower() == "title":
            return 1
        m = _HEADING.match(name)
        if m:
            return int(m.group(1))
        style = style.base_style
    return 0


class _Out:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.blocks: list[tuple[int, int, str]] = []
        self.headings: list[Heading] = []

    def add(self, s: str) -> None:
        self.parts.append(s)
        self.pos += len(s)

    def block(self, text: str, label: str, level: int = 0) -> None:
        text = text.strip()
        if not text:
            return
        if self.parts:
            self.add("\n\n")
        a = self.pos
        self.add(text)
        self.blocks.append((a, self.pos, label))
        if level:
            self.headings.append(Heading(a, self.pos, level))


def _walk(doc, out: _Out) -> None:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    counts = {"p": 0, "t": 0}

    def children(el):
        for ch in el.iterchildren():
            tag = ch.tag.rsplit("}", 1)[-1]
            if tag == "sdt":         # content controls: their content is body text
                for c in ch.iterchildren():
                    if c.tag.endswith("}sdtContent"):
                        yield from children(c)
            else:
                yield tag, ch

    for tag, el in children(doc.element.body):
        if tag == "p":
            p = Paragraph(el, doc)
            counts["p"] += 1
            out.block(p.text, f"paragraph {counts['p']}", heading_level(p))
        elif tag == "tbl":
            counts["t"] += 1
            _table(Table(el, doc), counts["t"], out)


def _table(t, n: int, out: _Out) -> None:
    rows = []
    for r, row in enumerate(t.rows, 1):
        seen, cells = set(), []
        for c, cell in enumerate(row.cells, 1):
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append((" ".join(p.text.strip() for p in cell.paragraphs if p.text.strip()), r, c))
        rows.append([x for x in cells if x[0]])
    rows = [r for r in rows if r]
    if not rows:
        return
    if out.parts:
        out.add("\n\n")
    for k, row in enumerate(rows):
        if k:
            out.add("\n")
        for j, (text, r, c) in enumerate(row):
            if j:
                out.add("\t")
            a = out.pos
            out.add(text.replace("\n", " ").replace("\t", " "))
            out.blocks.append((a, out.pos, f"table {n} row {r} cell {c}"))


class DocxReader:
    name = "docx"
    suffixes = (".docx",)

    def read(self, path: Path, source: str, data: bytes, sha256: str) -> Document:
        from rag.settings import get

        docx = require("docx", "docx", "reading .docx files")
        check_zip(data, get().max_unzipped)
        try:
            d = docx.Document(io.BytesIO(data))
        except Exception as e:
            raise SkipDocument(f"not a readable .docx ({type(e).__name__})") from None
        out = _Out()
        _walk(d, out)
        text = "".join(out.parts)
        if not text.strip():
            raise SkipDocument("no text in the document body")
        cp = d.core_properties
        meta = {k: v for k, v in (("title", cp.title), ("author", cp.author)) if v}
        return Document(source, path, "utf-8", text, sha256, reader=self.name,
                        layout=Layout(blocks=out.blocks), headings=tuple(out.headings), meta=meta)
