"""PDF reader: the text layer through pypdfium2, OCR for pages that are only an image.

Chosen by measurement (issue 12, LibreOffice and reportlab PDFs of the seeds, one and two
columns, embedded and non-embedded CJK fonts): pypdfium2 returns 99.9–100% of the
characters in order at 17–46 ms a page, with a box per character; pdfplumber mixed two
columns (54%), pdfminer.six took 120–220 ms a page, pypdf gives no boxes. Boxes are
`get_charbox(i, loose=True)`: the tight box of "。" is a dot. Paragraphs, columns and
running headers are rebuilt by `rag.documents.textflow`.

A page with fewer than MIN_TEXT characters in its text layer but with an image is
rendered at OCR_DPI and OCR'd (`rag.documents.ocr`). Encrypted, corrupt, truncated and
over-long files (`RAG_MAX_PAGES`) are skipped whole, never half-indexed.
"""
from __future__ import annotations

from pathlib import Path

from rag.documents.base import Document, SkipDocument
from rag.documents.textflow import Glyph, Page, flow, lines_from_glyphs
from rag.errors import require

MIN_TEXT = 10
OCR_DPI = 300


def _open(data: bytes):
    pdfium = require("pypdfium2", "pdf", "reading PDF files")
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        msg = str(e).lower()
        if "password" in msg:
            raise SkipDocument("encrypted PDF (password protected)") from None
        raise SkipDocument(f"not a readable PDF ({str(e).splitlines()[0][:80]})") from None


def page_glyphs(page) -> list[Glyph]:
    """Glyphs of a page's text layer in content order, whitespace dropped."""
    import pypdfium2.raw as raw

    tp = page.get_textpage()
    try:
        out = []
        space = False
        for i in range(tp.count_chars()):
            code = raw.FPDFText_GetUnicode(tp.raw, i)
            if not code or raw.FPDFText_IsGenerated(tp.raw, i) == 1:
                continue
            ch = chr(code)
            if ch.isspace():
                space = ch in " \u3000\u00a0"
                continue
            if 0xD800 <= code <= 0xDFFF or code == 0xFFFE:
                continue
            x0, y0, x1, y1 = tp.get_charbox(i, loose=True)
            size = raw.FPDFText_GetFontSize(tp.raw, i) or (y1 - y0)
            out.append(Glyph(ch, x0, y0, x1, y1, size, space and bool(out)))
            space = False
        return out
    finally:
        tp.close()


def _has_image(page) -> bool:
    import pypdfium2.raw as raw

    return any(True for _ in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=3))


def read_pages(data: bytes, label: str = "") -> tuple[list[Page], dict]:
    """Pages of a PDF (text layer or OCR) and its metadata; SkipDocument when unusable."""
    from rag.settings import get

    pdf = _open(data)
    try:
        n = len(pdf)
        if n == 0:
            raise SkipDocument("PDF has no pages")
        limit = get().max_pages
        if n > limit:
            raise SkipDocument(f"{n} pages, more than RAG_MAX_PAGES={limit}")
        pages: list[Page | None] = []
        scans: list[tuple[int, object, float]] = []
        for i in range(n):
            page = pdf[i]
            w, h = page.get_size()
            glyphs = page_glyphs(page)
            if len(glyphs) >= MIN_TEXT:
                pages.append(Page(w, h, lines_from_glyphs(glyphs), "pdf"))
            elif _has_image(page):
                pages.append(None)
                scans.append((i, _render(page, w, h), h))
            else:
                pages.append(Page(w, h, lines_from_glyphs(glyphs), "pdf"))
            page.close()
        if scans:
            from rag.documents.ocr import ocr_pages

            ocr = ocr_pages([im for _, (im, _d), _ in scans], scans[0][1][1],
                            [h for *_, h in scans], label) if _same_dpi(scans) else \
                [ocr_pages([im], d, [h], label)[0] for _, (im, d), h in scans]
            for (i, _img, h), lines in zip(scans, ocr):
                w = pdf[i].get_size()[0]
                pages[i] = Page(w, h, lines, "ocr")
        meta = {k.lower(): v for k, v in (pdf.get_metadata_dict() or {}).items()
                if k in ("Title", "Author", "Subject") and v}
    except pdfium_error() as e:   # pdfium errors on damaged page trees, truncated streams …
        raise SkipDocument(f"damaged PDF ({type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''})") from None
    finally:
        pdf.close()
    if not any(p.lines for p in pages):
        raise SkipDocument("no text layer and no readable image (nothing to index)")
    return pages, meta


def pdfium_error() -> type[Exception]:
    import pypdfium2 as pdfium

    return pdfium.PdfiumError


def _same_dpi(scans) -> bool:
    return len({d for _, (_im, d), _ in scans}) == 1


def _render(page, w: float, h: float):
    """The page as a greyscale image for OCR: OCR_DPI, lowered to stay within RAG_MAX_PIXELS."""
    from rag.settings import get

    dpi = OCR_DPI
    limit = get().max_pixels
    while dpi > 72 and (w * dpi / 72) * (h * dpi / 72) > limit:
        dpi -= 25
    img = page.render(scale=dpi / 72, grayscale=True).to_pil()
    return img.convert("L"), dpi


class PdfReader:
    name = "pdf"
    suffixes = (".pdf",)

    def read(self, path: Path, source: str, data: bytes, sha256: str) -> Document:
        pages, meta = read_pages(data, source)
        text, layout = flow(pages)
        if not text.strip():
            raise SkipDocument("no text found on any page")
        meta["pages"] = len(pages)
        meta["text_layer"] = "ocr" if all(p.layer == "ocr" for p in pages) else \
            ("pdf+ocr" if any(p.layer == "ocr" for p in pages) else "pdf")
        return Document(source, path, "utf-8", text, sha256, reader=self.name, layout=layout, meta=meta)
