"""Bad documents are skipped whole with one warning line naming the file and the reason;
the rest of the corpus is read (checked through `rag chunks`, which reads the corpus as
`rag build` does)."""
from __future__ import annotations

import io
import json
import zipfile

import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("reportlab")
pytest.importorskip("docx")

import docgen  # noqa: E402
from conftest import SEEDS, run_cli  # noqa: E402

SEED = SEEDS / "003_8750069abcf0ab7e.txt"


def _pdf(path, pages=1, text="公安工作", encrypt=None, blank=False):
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    c = canvas.Canvas(str(path), encrypt=encrypt)
    for i in range(pages):
        if not blank:
            c.setFont("STSong-Light", 12)
            c.drawString(72, 700, f"{text}{i}")
        c.showPage()
    c.save()
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "good.txt").write_text(docgen.excerpt(SEED, 600), encoding="utf-8")
    good = docgen.make_pdf(docgen.excerpt(SEED, 600), d / "good.pdf")
    _pdf(d / "encrypted.pdf", encrypt="secret")
    data = good.read_bytes()
    (d / "truncated.pdf").write_bytes(data[: len(data) // 2])
    (d / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40)
    _pdf(d / "long.pdf", pages=2001, text="x")
    _pdf(d / "blank.pdf", blank=True)
    docx = docgen.make_docx(docgen.excerpt(SEED, 600), d / "good.docx").read_bytes()
    (d / "truncated.docx").write_bytes(docx[: len(docx) // 2])
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * (24 * 2**20))
    (d / "bomb.docx").write_bytes(bomb.getvalue())
    (d / "scripts.html").write_text("<html><head><script>var a='正文';</script></head><body>"
                                    "<script>document.write('x')</script></body></html>", encoding="utf-8")
    (d / "bogus.png").write_bytes(b"this is not a picture at all" * 10)
    (d / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 512)
    return d


def test_each_bad_file_is_one_warning_and_the_rest_is_read(corpus):
    r = run_cli("chunks", "--corpus", corpus, "--json", timeout=300,
                env={"RAG_MAX_UNZIPPED": str(16 * 2**20), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    warnings = {ln.split(":")[1].strip().split()[-1]: ln for ln in r.stderr.splitlines() if ln.startswith("warning:")}
    expect = {
        "encrypted.pdf": "encrypted", "truncated.pdf": "PDF", "corrupt.pdf": "PDF",
        "long.pdf": "RAG_MAX_PAGES", "blank.pdf": "no text", "truncated.docx": ".docx",
        "bomb.docx": "zip bomb", "scripts.html": "no main text", "bogus.png": "not a readable image",
        "old.doc": "libreoffice-writer-nogui",
    }
    for name, reason in expect.items():
        assert name in warnings, (name, r.stderr)
        assert reason in warnings[name], warnings[name]
    sources = {json.loads(ln)["source"] for ln in r.stdout.splitlines()}
    assert sources == {"good.txt", "good.pdf", "good.docx"}
