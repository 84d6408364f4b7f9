"""PDF page images with the cited characters highlighted (rendered by pypdfium2, cached).

A result or cite match of a PDF carries `page`, `page_end` and `boxes` ([page, x0, y0, x1,
y1] in PDF points, bottom-left origin). `attach` adds `page_images` to such records: one
JPEG data URI per page the span touches (at most MAX_PAGES), the band of the page around
the boxes (full width, CONTEXT_PT above and below) at SCALE, boxes filled in translucent
yellow. Images are cached on disk by (file size, mtime, page, boxes, scale), so a repeated
search costs a file read; the first render of an A4 page at 1.6× is ~40 ms.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Iterable, Mapping, MutableMapping

SCALE = 1.6
CONTEXT_PT = 36
MAX_PAGES = 2
HIGHLIGHT = (255, 214, 0, 110)
OUTLINE = (230, 120, 0, 255)


def cache_dir() -> Path:
    from rag.settings import get

    return Path(get().ocr_cache).parent / "pages"


def render(pdf: Path, page: int, boxes: Iterable[Iterable[float]], scale: float = SCALE,
           crop: bool = True) -> bytes:
    """JPEG of page `page` (1-based) of `pdf` with `boxes` on that page highlighted."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw

    mine = [b for b in boxes if int(b[0]) == page]
    doc = pdfium.PdfDocument(str(pdf))
    try:
        pg = doc[page - 1]
        w, h = pg.get_size()
        img = pg.render(scale=scale).to_pil().convert("RGBA")
    finally:
        doc.close()
    over = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(over)
    for _p, x0, y0, x1, y1 in mine:
        r = (x0 * scale, (h - y1) * scale, x1 * scale, (h - y0) * scale)
        draw.rectangle(r, fill=HIGHLIGHT)
        draw.line([(r[0], r[3]), (r[2], r[3])], fill=OUTLINE, width=2)
    img = Image.alpha_composite(img, over).convert("RGB")
    if crop and mine:
        top = max(0.0, h - max(b[4] for b in mine) - CONTEXT_PT) * scale
        bottom = min(h, h - min(b[2] for b in mine) + CONTEXT_PT) * scale
        img = img.crop((0, int(top), img.size[0], int(bottom)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=82)
    return buf.getvalue()


def cached(pdf: Path, page: int, boxes: list, scale: float = SCALE, crop: bool = True) -> bytes:
    st = pdf.stat()
    key = hashlib.sha1(json.dumps([str(pdf.resolve()), st.st_size, st.st_mtime_ns, page,
                                   boxes, scale, crop]).encode()).hexdigest()
    path = cache_dir() / key[:2] / f"{key}.jpg"
    try:
        return path.read_bytes()
    except OSError:
        pass
    data = render(pdf, page, boxes, scale, crop)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        pass
    return data


def data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def attach(items: Iterable[MutableMapping], roots: Iterable[Path | None]) -> None:
    """Add `page_images` (data URIs) to every PDF record with boxes whose file is found
    under one of the corpus `roots`; anything that fails leaves the record as it was."""
    roots = [Path(r) for r in roots if r]
    for it in items:
        if not isinstance(it, MutableMapping) or not it.get("boxes") \
                or not str(it.get("source", "")).lower().endswith(".pdf"):
            continue
        pdf = next((r / it["source"] for r in roots if (r / it["source"]).is_file()), None)
        if pdf is None:
            continue
        try:
            pages = sorted({int(b[0]) for b in it["boxes"]})[:MAX_PAGES]
            it["page_images"] = [(p, data_uri(cached(pdf, p, it["boxes"]))) for p in pages]
        except Exception:   # noqa: BLE001 - a missing picture never costs the result
            continue


def figure_html(r: Mapping) -> str:
    """The page images of a record as HTML (empty when it has none)."""
    from html import escape

    imgs = r.get("page_images") or []
    return "".join(f'<figure class="rag-page" style="margin:.5em 0">'
                   f'<img alt="第{p}页" src="{escape(uri)}" loading="lazy" '
                   'style="max-width:100%;border:1px solid #ddd">'
                   f'<figcaption>第{p}页 page {p}</figcaption></figure>' for p, uri in imgs)
