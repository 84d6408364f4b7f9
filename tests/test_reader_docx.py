"""A DOCX made from a seed with python-docx: heading styles, centred byline paragraphs, a
table, a running header and footer. Text round trip, headings → sections, tables read in
order, header/footer left out, bylines, chunk offsets and blocks."""
from __future__ import annotations

import pytest

pytest.importorskip("docx")

import docgen  # noqa: E402
from conftest import SEEDS  # noqa: E402
from rag.chunks import chunk_document  # noqa: E402
from rag.chunks.cleaning import clean  # noqa: E402
from rag.documents import read_document  # noqa: E402

SEED = SEEDS / "000_9fefdf128692389e.txt"
ROWS = [["工程", "要求"], ["新质战斗力提升工程", "以新质战斗力提升为牵引"], ["治理效能提升工程", "把准强治理的精髓要义"]]


@pytest.fixture(scope="module")
def docx_doc(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docx")
    text = SEED.read_text(encoding="utf-8")
    path = docgen.make_docx(text, folder / "seed.docx", table_rows=ROWS)
    doc = read_document(folder, path)
    assert doc is not None
    return text, doc


def test_text_round_trips_with_the_table_in_place(docx_doc, record_property):
    seed, doc = docx_doc
    share = docgen.in_order_share(seed, doc.text)
    record_property("share_in_order", share)
    print(f"share of seed characters recovered in order: {share:.4f}")
    assert share >= 0.999
    assert "新质战斗力提升工程\t以新质战斗力提升为牵引" in doc.text
    # the table stands after the first body paragraph, before the second
    assert doc.text.index("新质战斗力提升工程") < doc.text.index("——编者")
    assert docgen.RUNNING not in doc.text and "第 1 页" not in doc.text


def test_heading_styles_are_the_sections_and_bylines_are_found(docx_doc):
    _seed, doc = docx_doc
    levels = {doc.text[h.start:h.end]: h.level for h in doc.headings}
    assert levels["一、全面深化规律性认识，树立和践行正确政绩观"] == 2
    chunks = chunk_document(doc)
    assert any(c.section == ["一、全面深化规律性认识，树立和践行正确政绩观"] for c in chunks)
    assert {"王一鸥", "黄瑞雪", "王冬斌"} <= {c.author for c in chunks}
    assert all(c.page is None and not c.boxes for c in chunks)


def test_every_chunk_is_its_span_and_names_its_block(docx_doc):
    _seed, doc = docx_doc
    chunks = chunk_document(doc)
    for c in chunks:
        assert clean(doc.text[c.start:c.end], c.joins, c.start) == c.text
        assert c.block.startswith(("paragraph ", "table 1 row "))
    cell = next(c for c in chunks if "新质战斗力提升工程" in c.text)
    assert doc.layout.block(doc.text.index("治理效能提升工程"), doc.text.index("治理效能提升工程") + 4) \
        == "table 1 row 3 cell 1"
    assert cell.text
