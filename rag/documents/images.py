"""Images (.png, .jpg, .jpeg, .tif, .tiff): OCR of each frame, boxes in points (pixels × 72/dpi).

The dpi is the image's own (300 when it does not say). A file Pillow cannot decode is
skipped, and so is one above `RAG_MAX_PIXELS` (a decompression bomb).
"""
from __future__ import annotations

import io
from pathlib import Path

from rag.documents.base import Document, SkipDocument
from rag.documents.textflow import Page, flow
from rag.errors import require

DEFAULT_DPI = 300


def _frames(data: bytes) -> tuple[list, int]:
    from rag.settings import get

    Image = require("PIL.Image", "ocr", "reading images")
    limit = get().max_pixels
    try:
        img = Image.open(io.BytesIO(data))
        img.verify()
        img = Image.open(io.BytesIO(data))
    except Exception:
        raise SkipDocument("not a readable image") from None
    if img.size[0] * img.size[1] > limit:
        raise SkipDocument(f"{img.size[0]}×{img.size[1]} pixels, more than RAG_MAX_PIXELS={limit}")
    dpi = img.info.get("dpi", (DEFAULT_DPI, DEFAULT_DPI))[0]
    dpi = int(round(float(dpi))) if dpi and float(dpi) >= 50 else DEFAULT_DPI
    frames = []
    try:
        for k in range(getattr(img, "n_frames", 1)):
            if k >= get().max_pages:
                raise SkipDocument(f"more than RAG_MAX_PAGES={get().max_pages} frames")
            img.seek(k)
            frames.append(img.convert("L"))
    except SkipDocument:
        raise
    except Exception:
        raise SkipDocument("truncated or damaged image") from None
    return frames, dpi


class ImageReader:
    name = "image"
    suffixes = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

    def read(self, path: Path, source: str, data: bytes, sha256: str) -> Document:
        from rag.documents.ocr import ocr_pages

        frames, dpi = _frames(data)
        heights = [im.size[1] * 72 / dpi for im in frames]
        pages = [Page(im.size[0] * 72 / dpi, h, lines, "ocr")
                 for im, h, lines in zip(frames, heights, ocr_pages(frames, dpi, heights, source))]
        text, layout = flow(pages)
        if not text.strip():
            raise SkipDocument("no text found in the image")
        return Document(source, path, "utf-8", text, sha256, reader=self.name, layout=layout,
                        meta={"pages": len(pages), "text_layer": "ocr"})
