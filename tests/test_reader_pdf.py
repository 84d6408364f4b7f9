"""Text PDFs made from the seeds (reportlab, STSong-Light: a CJK font named, not embedded),
one and two columns, with running headers and page numbers: text round trip, bylines,
chunk offsets, pages and boxes (checked with pypdfium2's get_text_bounded), `rag show`."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("reportlab")

import docgen  # noqa: E402
from conftest import SEEDS, run_cli  # noqa: E402
from rag.chunks import chunk_document  # noqa: E402
from rag.chunks.cleaning import clean  # noqa: E402
from rag.index.ngrams import normalize  # noqa: E402
from rag.documents import read_document  # noqa: E402

SEED = SEEDS / "003_8750069abcf0ab7e.txt"


@pytest.fixture(scope="module", params=[1, 2], ids=["one-column", "two-columns"])
def pdf(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"pdf{request.param}")
    text = docgen.excerpt(SEED, 5200)
    path = docgen.make_pdf(text, folder / "seed.pdf", columns=request.param)
    doc = read_document(folder, path)
    assert doc is not None
    return text, path, doc


def test_text_round_trips_in_order(pdf, record_property):
    seed, _path, doc = pdf
    share = docgen.in_order_share(seed, doc.text)
    record_property("share_in_order", share)
    print(f"share of seed characters recovered in order: {share:.4f}")
    assert share >= 0.995
    assert doc.meta["pages"] >= 2 and doc.meta["text_layer"] == "pdf"
    assert docgen.RUNNING not in doc.text and "- 1 -" not in doc.text   # running header, page numbers
    assert doc.text.count("\f") == doc.meta["pages"] - 1


def test_bylines_and_headings_found(pdf):
    _seed, _path, doc = pdf
    chunks = chunk_document(doc)
    assert {c.author for c in chunks} >= {"王志忠"}
    assert any(c.affiliation.startswith("广东省副省长") for c in chunks)
    assert any(s.startswith("一、") for c in chunks for s in c.section)


def test_every_chunk_is_its_span_and_its_boxes_hold_its_characters(pdf):
    _seed, path, doc = pdf
    chunks = chunk_document(doc)
    assert chunks
    for c in chunks:
        assert clean(doc.text[c.start:c.end], c.joins, c.start) == c.text
        assert c.page is not None and c.page <= c.page_end <= doc.meta["pages"]
        assert c.boxes and all(b[0] in range(c.page, c.page_end + 1) for b in c.boxes)
        got = normalize(docgen.boxed_text(path, c.boxes))
        want = normalize(c.text)
        assert docgen.in_order_share(want, got) >= 0.99, (c.text[:40], got[:40])
        assert len(got) <= len(want) + 2, "boxes hold characters outside the chunk"


def test_quote_across_a_page_break_has_both_pages(pdf):
    _seed, _path, doc = pdf
    k = doc.text.index("\n\f\n")
    start, end = k - 12, k + 3 + 12
    page, page_end, boxes = doc.layout.locate(start, end)
    assert page_end == page + 1 and {b[0] for b in boxes} == {page, page_end}


@pytest.fixture(scope="module")
def pdf_index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pdfcorpus")
    docgen.make_pdf(docgen.excerpt(SEED, 3000), folder / "seed.pdf")
    idx = tmp_path_factory.mktemp("pdfindex")
    r = run_cli("build", "--corpus", folder, "--index", idx, timeout=600)
    assert r.returncode == 0, r.stderr
    return folder, idx


def test_rag_show_gives_each_chunk_its_text_page_and_boxes(pdf_index):
    folder, idx = pdf_index
    r = run_cli("chunks", "--corpus", folder, "--json")
    chunks = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert chunks
    for c in chunks[:3]:
        r = run_cli("show", "seed.pdf", "--start", c["start"], "--end", c["end"], "--json", "--index", idx)
        assert r.returncode == 0, r.stderr
        shown = json.loads(r.stdout)
        assert clean(shown["text"], c["joins"], c["start"]) == c["text"]
        assert shown["page"] == c["page"] and shown["boxes"] == c["boxes"]


def test_cite_names_the_page_and_boxes_of_the_quote(pdf_index):
    folder, idx = pdf_index
    doc = read_document(folder, folder / "seed.pdf")
    k = doc.text.index("广东公安机关将深入学习贯彻会议精神")
    quote = doc.text[k:k + 30]
    r = run_cli("cite", quote, "--json", "--index", idx)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)["matches"][0]
    assert (m["start"], m["end"]) == (k, k + 30) and m["page"] == 1
    assert normalize(docgen.boxed_text(folder / "seed.pdf", m["boxes"])) == normalize(quote)
