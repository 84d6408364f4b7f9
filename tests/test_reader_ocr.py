"""A scanned PDF made from a seed: one page rendered at 200 dpi, skewed 0.4°, noised,
JPEG-compressed, wrapped as an image-only PDF; OCR'd by tesseract (~5 s), cached."""
from __future__ import annotations

import shutil
import time

import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("reportlab")
if shutil.which("tesseract") is None:
    pytest.skip("tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-chi-sim)",
                allow_module_level=True)

import docgen  # noqa: E402
from conftest import SEEDS  # noqa: E402
from rag.chunks import chunk_document  # noqa: E402
from rag.chunks.cleaning import clean  # noqa: E402
from rag.index.ngrams import normalize  # noqa: E402
from rag.documents import read_document  # noqa: E402

SEED = SEEDS / "003_8750069abcf0ab7e.txt"


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scan")
    mp = pytest.MonkeyPatch()
    mp.setenv("RAG_OCR_CACHE", str(tmp_path_factory.mktemp("ocrcache")))
    from rag import settings

    settings.get.cache_clear()
    text_pdf = docgen.make_pdf(docgen.excerpt(SEED, 2000), tmp_path_factory.mktemp("src") / "seed.pdf",
                               running=False)
    scan = docgen.scan_pdf(text_pdf, folder / "scan.pdf", pages=[0])
    t0 = time.perf_counter()
    doc = read_document(folder, scan)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = read_document(folder, scan)
    cached = time.perf_counter() - t0
    yield text_pdf, doc, again, first, cached
    mp.undo()
    settings.get.cache_clear()


def _page_text(text_pdf):
    doc = read_document(text_pdf.parent, text_pdf)
    return doc.text.split("\f")[0]


def test_ocr_text_round_trips(scanned, record_property):
    text_pdf, doc, _again, first, cached = scanned
    assert doc is not None and doc.meta["text_layer"] == "ocr" and doc.meta["pages"] == 1
    share = docgen.in_order_share(_page_text(text_pdf), doc.text)
    record_property("share_in_order", share)
    print(f"OCR: share of page characters recovered in order {share:.4f}; {first:.1f} s, cached {cached:.2f} s")
    assert share >= 0.97


def test_rebuild_never_repeats_the_ocr(scanned):
    _pdf, doc, again, first, cached = scanned
    assert again.text == doc.text
    assert cached < first / 3


def test_ocr_boxes_cover_the_characters_on_the_page(scanned):
    """Boxes are in PDF points, bottom-left origin: the same place on the text PDF the scan
    was made from holds the same characters (the skew of 0.4° moves them < 2 pt)."""
    text_pdf, doc, _again, _f, _c = scanned
    chunks = chunk_document(doc)
    assert chunks
    for c in chunks:
        assert clean(doc.text[c.start:c.end], c.joins, c.start) == c.text
        assert c.page == 1 and c.boxes
        got, want = normalize(docgen.boxed_text(text_pdf, c.boxes)), normalize(c.text)
        assert docgen.in_order_share(want, got) >= 0.9, (c.text[:30], got[:30])
