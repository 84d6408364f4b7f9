"""OCR with the Tesseract command line: word boxes of a page image, cached by content hash.

Chosen by measurement (issue 12, 200-dpi scans with skew and JPEG noise): Debian's
tesseract-ocr 5.3 + chi_sim reach 0.5–0.6% character errors at 4–6 s a page single-threaded
(`OMP_THREAD_LIMIT=1`; its own threading was 22 s a page on 2 cores), 95 MB; rapidocr
1.4.4 was 0.6% at ~14 s and 1 GB and silently drops low-scored lines. Pages run in
parallel, one single-threaded process per core. The TSV output (word boxes) is cached
under `rag.settings.get().ocr_cache` by the hash of the pixels, language and settings, so
a rebuild never repeats an OCR.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rag.documents.base import SkipDocument
from rag.documents.textflow import Glyph, TextLine
from rag.errors import MissingExtra

LANG = "chi_sim"
PSM = "3"
TIMEOUT_S = 300


def available() -> bool:
    return shutil.which("tesseract") is not None


def _require() -> str:
    exe = shutil.which("tesseract")
    if exe is None:
        raise SkipDocument("needs OCR, but tesseract is not installed (apt-get install tesseract-ocr "
                           "tesseract-ocr-chi-sim, or run make setup)")
    return exe


def _key(img, dpi: int) -> str:
    h = hashlib.sha256()
    h.update(f"{img.mode}:{img.size}:{dpi}:{LANG}:{PSM}\0".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def _cache_path(key: str) -> Path:
    from rag.settings import get

    return Path(get().ocr_cache) / key[:2] / f"{key}.tsv"


def tsv(img, dpi: int) -> str:
    """Tesseract's TSV for a PIL image (from the cache when this image was seen before)."""
    key = _key(img, dpi)
    path = _cache_path(key)
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    exe = _require()
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG", dpi=(dpi, dpi))
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    try:
        r = subprocess.run([exe, "stdin", "stdout", "-l", LANG, "--psm", PSM, "--dpi", str(dpi), "tsv"],
                           input=buf.getvalue(), capture_output=True, env=env, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SkipDocument(f"OCR of a page took longer than {TIMEOUT_S} s") from None
    if r.returncode != 0:
        msg = r.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SkipDocument(f"tesseract failed: {msg[-1] if msg else r.returncode}")
    out = r.stdout.decode("utf-8", "replace")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(out, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass   # an unwritable cache costs a repeated OCR, never the document
    return out


def lines_from_tsv(text: str, dpi: int, height_pt: float) -> list[TextLine]:
    """Tesseract's lines with one glyph per character (a word's box split evenly), in PDF
    points with the origin at the bottom-left (pixels × 72 / dpi)."""
    k = 72.0 / dpi
    groups: dict[tuple, list[Glyph]] = {}
    order: list[tuple] = []
    for row in text.splitlines()[1:]:
        f = row.split("\t")
        if len(f) < 12 or f[0] != "5":
            continue
        word = f[11].strip()
        if not word:
            continue
        left, top, w, h = (int(v) for v in f[6:10])
        key = tuple(f[1:5])
        if key not in groups:
            groups[key] = []
            order.append(key)
        n = len(word)
        y0, y1 = height_pt - (top + h) * k, height_pt - top * k
        for i, ch in enumerate(word):
            x0 = (left + w * i / n) * k
            x1 = (left + w * (i + 1) / n) * k
            groups[key].append(Glyph(ch, x0, y0, x1, y1, h * k))
    out = []
    for key in order:
        gl = groups[key]
        size = sorted(g.size for g in gl)[len(gl) // 2]
        for g in gl:            # one line height for all its glyphs: boxes of a line align
            g.y0, g.y1, g.size = min(x.y0 for x in gl), max(x.y1 for x in gl), size
        out.append(TextLine(gl, ordered=True))
    return out


def ocr_pages(images: list, dpi: int, heights_pt: list[float], label: str = "") -> list[list[TextLine]]:
    """Lines of each page image, OCR'd in parallel (one single-threaded tesseract per core),
    with progress on a terminal."""
    _require() if any(_not_cached(im, dpi) for im in images) else None
    done = [0]
    tty = sys.stderr.isatty()

    def one(i: int) -> list[TextLine]:
        lines = lines_from_tsv(tsv(images[i], dpi), dpi, heights_pt[i])
        done[0] += 1
        if tty:
            print(f"\rOCR {label}: page {done[0]}/{len(images)}", end="", file=sys.stderr, flush=True)
        return lines

    workers = max(1, min(len(images), os.cpu_count() or 1, 4))
    with ThreadPoolExecutor(workers) as ex:
        out = list(ex.map(one, range(len(images))))
    if tty and images:
        print(file=sys.stderr)
    return out


def _not_cached(img, dpi: int) -> bool:
    return not _cache_path(_key(img, dpi)).exists()


__all__ = ["available", "tsv", "lines_from_tsv", "ocr_pages", "MissingExtra"]
