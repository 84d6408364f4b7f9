"""HTML (`.html`, `.htm`): the main text of a saved web page, with its headings and bylines.

Encoding: a BOM, else the charset the page declares (GB2312/GBK read as GB18030, their
superset), else detection as for text files. Main text: scripts, styles, forms, `<nav>`,
`<aside>`, `<footer>` and elements whose class or id names boilerplate (nav, menu, sidebar,
share, footer, comment, breadcrumb, copyright, …) are removed; the main container is the
element whose paragraphs hold the most text (readability's scoring, simplified); a page
title (`<h1>`) and byline-like blocks before it are kept. trafilatura was a fair start but
dropped every `<p class="meta">` (subtitle, byline, editor's note) of the issue's test page:
bylines must survive, since results show the author.

Canonical text: blocks (p, li, h1–h6, td, …) separated by a blank line, `<br>` a line
break; `<h1>`–`<h6>` are `Document.headings`; the layout names each block ("p 12", "h2 3").
"""
from __future__ import annotations

import codecs
import re
from pathlib import Path

from rag.documents.base import Document, Heading, SkipDocument
from rag.documents.layout import Layout
from rag.errors import require

_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-]+)""", re.I)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "nav", "aside", "footer", "form",
             "button", "select", "svg", "canvas", "object", "embed", "head", "input", "textarea")
BOILER = {"nav", "navbar", "menu", "sidebar", "side", "sidenav", "share", "sharebar", "social", "footer",
          "foot", "comment", "comments", "breadcrumb", "breadcrumbs", "crumb", "copyright", "banner",
          "ad", "ads", "advert", "related", "recommend", "hot", "login", "search", "toolbar", "tags",
          "pager", "pagination", "topbar", "header", "bottom", "links", "friendlink", "qrcode"}
KEEP = {"meta", "byline", "author", "info", "source", "subtitle", "title", "summary", "lead", "editor"}
BLOCK_TAGS = {"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
              "table", "tr", "td", "th", "dd", "dt", "dl", "section", "article", "main", "figure",
              "figcaption", "center", "address", "hr", "header", "caption"}
_TOKENS = re.compile(r"[\s\-_:]+")
_WRAP = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef])[ \t\r]*\n\s*(?=[\u3000-\u9fff\uff00-\uffef])")


def decode_html(data: bytes) -> tuple[str, str]:
    """(encoding, text) of an HTML file: BOM, declared charset, then detection."""
    for bom, enc in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return enc, data.decode(enc, "replace")
    m = _CHARSET.search(data[:4096])
    if m:
        enc = m.group(1).decode("ascii").lower()
        enc = "gb18030" if enc in ("gb2312", "gbk", "gb18030", "x-gbk", "cp936") else enc
        try:
            return enc, data.decode(enc)
        except (LookupError, UnicodeDecodeError):
            pass
    from rag.documents.plaintext import detect_encoding

    enc = detect_encoding(data) or "utf-8"
    return enc, data.decode(enc, "replace")


def _tokens(el) -> set[str]:
    return {t.lower() for t in _TOKENS.split(f"{el.get('class', '')} {el.get('id', '')}") if t}


def _boiler(el) -> bool:
    t = _tokens(el)
    return bool(t & BOILER) and not (t & KEEP)


def _clean_tree(root) -> None:
    for el in list(root.iter(*DROP_TAGS)):
        if el.getparent() is not None:
            el.drop_tree()
    for el in list(root.iter()):
        if isinstance(el.tag, str) and el.getparent() is not None and el.tag not in ("html", "body") \
                and _boiler(el) and not el.xpath(".//h1"):
            el.drop_tree()


def _text_len(el) -> int:
    return len(re.sub(r"\s+", "", el.text_content()))


def main_container(root):
    """The element whose paragraphs hold the most text."""
    scores: dict = {}
    for p in root.iter("p", "pre", "blockquote", "li", "td"):
        n = _text_len(p)
        if n < 10:
            continue
        parent = p.getparent()
        if parent is None:
            continue
        scores[parent] = scores.get(parent, 0) + n
        gp = parent.getparent()
        if gp is not None:
            scores[gp] = scores.get(gp, 0) + n / 2
    if not scores:
        return root.find("body") if root.find("body") is not None else root
    return max(scores, key=lambda e: scores[e])


class _Emit:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.blocks: list[tuple[int, int, str]] = []
        self.headings: list[Heading] = []
        self.cur: list[str] = []
        self.counts: dict[str, int] = {}

    def inline(self, s: str) -> None:
        if s:
            self.cur.append(s)

    def flush(self, tag: str) -> None:
        raw = "".join(self.cur)
        self.cur = []
        lines = [_squash(ln) for ln in raw.split("\n")]
        text = "\n".join(ln for ln in lines if ln)
        if not text:
            return
        if self.parts:
            self.parts.append("\n\n")
            self.pos += 2
        a = self.pos
        self.parts.append(text)
        self.pos += len(text)
        self.counts[tag] = self.counts.get(tag, 0) + 1
        self.blocks.append((a, self.pos, f"{tag} {self.counts[tag]}"))
        if len(tag) == 2 and tag[0] == "h" and tag[1].isdigit():
            self.headings.append(Heading(a, self.pos, int(tag[1])))


def _cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x3000 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF


def _squash(s: str) -> str:
    """Whitespace runs → one space; a source line wrap between two CJK characters → nothing."""
    s = s.replace("\u00a0", " ").replace("\u3000", " ")
    s = _WRAP.sub("", s)
    return re.sub(r"\s+", " ", s).strip()


def _walk(el, em: _Emit, block_tag: str) -> None:
    tag = el.tag if isinstance(el.tag, str) else ""
    is_block = tag in BLOCK_TAGS
    if is_block:
        em.flush(block_tag)
        block_tag = tag if tag != "div" else block_tag if block_tag != "div" else "div"
        if "meta" in _tokens(el) and tag == "p":
            block_tag = "p.meta"
    if tag == "br":
        em.inline("\n")
    elif el.text and tag:
        em.inline(el.text)
    for ch in el:
        _walk(ch, em, block_tag)
        if ch.tail:
            em.inline(ch.tail)
    if is_block:
        em.flush(block_tag)


def extract(text: str) -> tuple[str, list[tuple[int, int, str]], list[Heading], str]:
    """(canonical text, blocks, headings, page title) of an HTML page."""
    lxml_html = require("lxml.html", "html", "reading HTML files")
    text = _XML_DECL.sub("", text)
    try:
        root = lxml_html.document_fromstring(text)
    except Exception:
        raise SkipDocument("not parseable as HTML") from None
    title_el = root.find(".//title")
    page_title = _squash(title_el.text_content()) if title_el is not None else ""
    _clean_tree(root)
    main = main_container(root)
    em = _Emit()
    lead = _lead(root, main)
    for el in lead:
        _walk(el, em, el.tag)
    _walk(main, em, main.tag if isinstance(main.tag, str) else "div")
    em.flush("div")
    return "".join(em.parts), em.blocks, em.headings, page_title


def _lead(root, main) -> list:
    """The page's <h1> and byline-like blocks after it, when they stand before `main`."""
    if main.xpath(".//h1"):
        return []
    h1s = root.xpath("//h1")
    if not h1s:
        return []
    order = {el: i for i, el in enumerate(root.iter())}
    h1 = h1s[0]
    if order.get(h1, 0) > order.get(main, 0):
        return []
    out = [h1]
    for el in root.iter():
        i = order.get(el, 0)
        if order[h1] < i < order[main] and isinstance(el.tag, str) and (_tokens(el) & KEEP) \
                and not any(a in out for a in el.iterancestors()) and _text_len(el) < 200:
            out.append(el)
    return out


class HtmlReader:
    name = "html"
    suffixes = (".html", ".htm", ".xhtml")

    def read(self, path: Path, source: str, data: bytes, sha256: str) -> Document:
        if not data.strip():
            raise SkipDocument("empty HTML file")
        enc, text = decode_html(data)
        body, blocks, headings, title = extract(text)
        if not body.strip():
            raise SkipDocument("no main text (only scripts, markup or navigation)")
        meta = {"title": title} if title else {}
        meta["encoding"] = enc
        return Document(source, path, "utf-8", body, sha256, reader=self.name,
                        layout=Layout(blocks=blocks), headings=tuple(headings), meta=meta)
