"""Generators of real documents made from seed text (tests and bench/bench_formats.py).

Each takes the seed's blocks (runs of non-blank lines, as `rag.chunks.structure` sees
them) and typesets them as a journal would: centred titles and bylines, indented body
paragraphs, running headers and page numbers (PDF), heading styles (DOCX), boilerplate
around the article (HTML).
"""
from __future__ import annotations

import html
import io
import random
from pathlib import Path

from rag.chunks.structure import _classify, heading_level, split_blocks

RUNNING = "公安研究 · 2026年第2期"


def blocks(text: str) -> list[tuple[str, list[str]]]:
    """(kind, lines) of a seed text: title | subtitle | byline | note | trailer | heading | body."""
    bl = split_blocks(text)
    _classify(text, bl)
    out = []
    for b in bl:
        lines = [text[ln.start:ln.end].replace("**", "").strip() for ln in b.lines]
        kind = b.kind
        if kind == "body" and len(lines) == 1 and heading_level(lines[0]) in (1, 2) and len(lines[0]) <= 60 \
                and not lines[0].endswith("。"):
            kind = "heading"
        out.append((kind, [ln for ln in lines if ln]))
    return [(k, ls) for k, ls in out if ls]


# ------------------------------------------------------------------ PDF (reportlab)

def _styles(size: float = 10.5):
    from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY, TA_RIGHT
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    base = dict(fontName="STSong-Light", wordWrap="CJK")
    return {
        "title": ParagraphStyle("t", fontSize=16, leading=22, alignment=TA_CENTER, spaceBefore=14, spaceAfter=8, **base),
        "subtitle": ParagraphStyle("s", fontSize=12, leading=17, alignment=TA_CENTER, spaceAfter=8, **base),
        "byline": ParagraphStyle("b", fontSize=11.5, leading=16, alignment=TA_CENTER, spaceAfter=10, **base),
        "note": ParagraphStyle("n", fontSize=size, leading=size * 1.55, alignment=TA_RIGHT, spaceAfter=6, **base),
        "trailer": ParagraphStyle("r", fontSize=size, leading=size * 1.55, alignment=TA_RIGHT, **base),
        "heading": ParagraphStyle("h", fontSize=size + 1.5, leading=(size + 1.5) * 1.5, spaceBefore=6, spaceAfter=3, **base),
        "body": ParagraphStyle("p", fontSize=size, leading=size * 1.55, firstLineIndent=2 * size,
                               alignment=TA_JUSTIFY, **base),
    }


def make_pdf(text: str, path: Path, columns: int = 1, running: bool = True) -> Path:
    """A text PDF of a seed (STSong-Light: a CJK font the PDF names but does not embed)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Paragraph

    st = _styles(10.0 if columns > 1 else 10.5)
    W, H = A4
    margin, gap = 56, 18
    fw = (W - 2 * margin - gap * (columns - 1)) / columns
    frames = [Frame(margin + k * (fw + gap), margin, fw, H - 2 * margin, id=f"c{k}",
                    leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0) for k in range(columns)]

    def deco(canvas, doc):
        if running:
            canvas.setFont("STSong-Light", 9)
            canvas.drawString(margin, H - 36, RUNNING)
            canvas.drawCentredString(W / 2, 30, f"- {doc.page} -")

    doc = BaseDocTemplate(str(path), pagesize=A4, title="seed", author="rag tests")
    doc.addPageTemplates([PageTemplate("p", frames=frames, onPage=deco)])
    story = []
    for kind, lines in blocks(text):
        body = "<br/>".join(html.escape(ln, quote=False) for ln in lines) if kind in ("byline", "title") \
            else html.escape("".join(lines) if kind != "body" else _join(lines), quote=False)
        story.append(Paragraph(body, st[kind if kind in st else "body"]))
    doc.build(story)
    return path


def _join(lines: list[str]) -> str:
    out = lines[0]
    for ln in lines[1:]:
        out += ("" if out[-1:] and ord(out[-1]) > 0x2E80 and ord(ln[0]) > 0x2E80 else " ") + ln
    return out


def scan_pdf(pdf: Path, out: Path, pages: list[int] | None = None, dpi: int = 200, seed: int = 7) -> Path:
    """An image-only PDF: each page rendered at `dpi`, skewed 0.4°, noised, JPEG-compressed."""
    import numpy as np
    import pypdfium2 as pdfium
    from PIL import Image

    rng = np.random.default_rng(seed)
    doc = pdfium.PdfDocument(str(pdf))
    imgs = []
    for i in (pages if pages is not None else range(len(doc))):
        img = doc[i].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
        img = img.rotate(0.4, resample=Image.BICUBIC, expand=False, fillcolor=255)
        a = np.asarray(img, dtype=np.float32) + rng.normal(0, 12, (img.size[1], img.size[0]))
        img = Image.fromarray(np.clip(a, 0, 255).astype("uint8"))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=60)
        imgs.append(Image.open(io.BytesIO(buf.getvalue())))
    doc.close()
    imgs[0].save(out, "PDF", resolution=dpi, save_all=True, append_images=imgs[1:])
    return out


# ------------------------------------------------------------------ DOCX (python-docx)

def make_docx(text: str, path: Path, table_rows: list[list[str]] | None = None) -> Path:
    """A DOCX: article titles `Title`… no: `Heading 1`, "一、" headings `Heading 2`, "（一）"
    `Heading 3`, byline lines as centred paragraphs, a running header and footer, and a
    table after the first body paragraph when `table_rows` is given."""
    import docx
    from docx.enum.text import WD_ALIGN_PARAGRAPH

    d = docx.Document()
    sec = d.sections[0]
    sec.header.paragraphs[0].text = RUNNING
    sec.footer.paragraphs[0].text = "第 1 页"
    placed = table_rows is None
    for kind, lines in blocks(text):
        if kind == "title":
            d.add_paragraph(" ".join(lines), style="Heading 1")
        elif kind == "heading":
            lv = heading_level(lines[0])
            d.add_paragraph(lines[0], style="Heading 2" if lv == 1 else "Heading 3")
        elif kind in ("byline", "subtitle", "note", "trailer"):
            for ln in lines:
                p = d.add_paragraph(ln)
                p.alignment = WD_ALIGN_PARAGRAPH.CENTER if kind != "note" else WD_ALIGN_PARAGRAPH.RIGHT
        else:
            d.add_paragraph(_join(lines))
            if not placed:
                t = d.add_table(rows=len(table_rows), cols=len(table_rows[0]))
                for r, row in enumerate(table_rows):
                    for c, cell in enumerate(row):
                        t.cell(r, c).text = cell
                placed = True
    d.save(str(path))
    return path


# ------------------------------------------------------------------ HTML (GBK, boilerplate)

def make_html(text: str, path: Path, encoding: str = "gbk", declare: bool = True) -> Path:
    """A saved web page: navigation, sidebar, share bar, footer and scripts around the
    article; `<h1>`/`<h2>` titles and headings, `<p class="meta">` subtitles and bylines."""
    e = lambda s: html.escape(s, quote=False)
    body = []
    for kind, lines in blocks(text):
        if kind == "title":
            body.append(f"<h1>{e(' '.join(lines))}</h1>")
        elif kind == "heading":
            body.append(f"<h{2 if heading_level(lines[0]) == 1 else 3}>{e(lines[0])}</h{2 if heading_level(lines[0]) == 1 else 3}>")
        elif kind in ("byline", "subtitle", "note", "trailer"):
            body.append(f'<p class="meta">{"<br>".join(e(ln) for ln in lines)}</p>')
        else:
            body.append(f"<p>{e(_join(lines))}</p>")
    nav = "".join(f'<li><a href="/c{i}">栏目{i}</a></li>' for i in range(12))
    side = "".join(f'<li><a href="/n{i}">热点新闻标题第{i}条 公安机关开展专项行动</a></li>' for i in range(10))
    meta = f'<meta http-equiv="Content-Type" content="text/html; charset={encoding}">' if declare else ""
    page = f"""<!DOCTYPE html><html><head>{meta}<title>公安研究 - 文章</title>
<script>var _hmt = _hmt || []; document.write("统计代码 广告");</script>
<style>.nav{{color:red}}</style></head><body>
<div class="header"><ul class="nav">{nav}</ul><div class="search">搜索 登录 注册</div></div>
<div class="container"><div class="sidebar"><h3>热门文章</h3><ul>{side}</ul></div>
<div class="main"><div class="share">分享到：微信 微博 QQ空间</div>
<div class="article">{''.join(body)}</div>
<div class="share">分享到：微信 微博 QQ空间</div></div></div>
<div class="footer"><p>版权所有 © 2026 公安研究杂志社 京ICP备12345678号</p><p>联系我们 | 关于我们 | 网站地图</p></div>
<script>console.log("footer script 不是正文");</script></body></html>"""
    path.write_bytes(page.encode(encoding, "replace"))
    return path


def in_order_share(seed: str, got: str) -> float:
    """Share of the seed's letters and digits recovered in order (longest common subsequence
    over normalized text, via difflib matching blocks)."""
    import difflib

    from rag.index.ngrams import normalize

    a, b = normalize(seed), normalize(got)
    if not a:
        return 1.0
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return sum(m.size for m in sm.get_matching_blocks()) / len(a)


def rng(seed: int = 0) -> random.Random:
    return random.Random(seed)


# ------------------------------------------------------------------ checks shared by the tests

def excerpt(path: Path, chars: int) -> str:
    """The first blocks of a seed, about `chars` characters (whole blocks)."""
    text = path.read_text(encoding="utf-8")
    cut = text.find("\n\n", chars)
    return text if cut < 0 else text[:cut + 1]


def boxed_text(pdf_path: Path, boxes: list[list[float]]) -> str:
    """What pypdfium2's `get_text_bounded` finds inside the boxes (shrunk a quarter of the
    line height vertically so a neighbouring line's loose box does not leak in)."""
    pages = _textpages(str(pdf_path))
    out = []
    for page, x0, y0, x1, y1 in boxes:
        h = y1 - y0
        out.append(pages[page - 1].get_text_bounded(x0 - 0.5, y0 + 0.25 * h, x1 + 0.5, y1 - 0.25 * h))
    return "".join(out)


_OPEN: dict = {}


def _textpages(path: str) -> list:
    import os

    import pypdfium2 as pdfium

    key = (path, os.stat(path).st_mtime_ns)
    if key not in _OPEN:
        pdf = pdfium.PdfDocument(path)
        _OPEN[key] = (pdf, [pdf[i].get_textpage() for i in range(len(pdf))])
    return _OPEN[key][1]
