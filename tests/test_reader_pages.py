"""Page images of PDF citations: the cited characters' boxes are highlighted on the rendered
page, images are cached, and the plain-text citation names the page."""
from __future__ import annotations

import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("reportlab")

import docgen  # noqa: E402
from conftest import SEEDS  # noqa: E402
from rag.documents import read_document  # noqa: E402
from rag.web import pages  # noqa: E402
from rag.web.render import citation_text, match_card  # noqa: E402


@pytest.fixture()
def pdf(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_OCR_CACHE", str(tmp_path / "cache" / "ocr"))
    path = docgen.make_pdf(docgen.excerpt(SEEDS / "003_8750069abcf0ab7e.txt", 1500), tmp_path / "seed.pdf")
    return path, read_document(tmp_path, path)


def test_the_cited_characters_are_highlighted(pdf):
    import io

    from PIL import Image, ImageStat

    path, doc = pdf
    k = doc.text.index("广东公安机关将深入学习贯彻会议精神")
    page, _pe, boxes = doc.layout.locate(k, k + 17)
    img = Image.open(io.BytesIO(pages.render(path, page, boxes, crop=False))).convert("RGB")
    _p, x0, y0, x1, y1 = boxes[0]
    w, h = doc.layout.pages[0]
    s = img.size[0] / w

    def mean(top_pt, bottom_pt):
        return ImageStat.Stat(img.crop((int(x0 * s), int((h - top_pt) * s), int(x1 * s),
                                        int((h - bottom_pt) * s)))).mean

    r, g, b = mean(y1, y0)
    assert r - b > 60 and g - b > 30, (r, g, b)                 # yellow under the quote
    r, g, b = mean(y1 + 80, y0 + 60)
    assert abs(r - b) < 15, (r, g, b)                           # not elsewhere


def test_attach_adds_a_cached_image_and_the_card_shows_it(pdf):
    path, doc = pdf
    k = doc.text.index("广东公安机关将深入学习贯彻会议精神")
    page, page_end, boxes = doc.layout.locate(k, k + 17)
    m = {"source": "seed.pdf", "start": k, "end": k + 17, "text": doc.text[k:k + 17], "page": page,
         "page_end": page_end, "boxes": boxes, "author": "王志忠", "title": "聚焦主题主线", "kind": "exact",
         "similarity": 1.0, "diff": []}
    pages.attach([m], [path.parent])
    assert m["page_images"][0][0] == page and m["page_images"][0][1].startswith("data:image/jpeg;base64,")
    assert list(pages.cache_dir().rglob("*.jpg"))
    assert 'class="rag-page"' in match_card(1, m)
    assert f"第{page}页" in citation_text(m)
