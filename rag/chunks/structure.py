"""Document structure: blocks, page-break repair, articles, bylines and heading paths.

Works on raw offsets only; nothing here copies or rewrites text, so every paragraph keeps
an exact `[start, end)` span of the file plus the offsets of the page-break gaps it spans.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from rag.chunks.cleaning import clean
from rag.documents.base import Heading

# Sentence-final punctuation; a block ending in one of these was not cut by a page break.
FINAL = set("。！？；!?;…：:")
CLOSERS = set("”’」』）)】》\"'*")
OPENERS_TO_CLOSERS = {"“": "”", "（": "）", "(": ")", "《": "》", "「": "」", "『": "』", "【": "】"}

_CN_NUM = "一二三四五六七八九十百零〇"
HEADING_PATTERNS: list[tuple[int, re.Pattern[str]]] = [
    (1, re.compile(rf"^(?:第[{_CN_NUM}\d]+[部分章节篇]|[{_CN_NUM}]+、)")),
    (2, re.compile(rf"^[（(][{_CN_NUM}]+[）)]")),
    (3, re.compile(r"^\d{1,2}[.．、](?!\d)")),
    (4, re.compile(r"^[（(]\d{1,2}[）)]")),
    (5, re.compile(rf"^(?:[{_CN_NUM}]是|首先|其次|再次|最后)[，,：:]?")),
]
_POST_WORDS = "厅长|局长|书记|部长|主任|省长|市长|州长|县长|区长|政委|总队长|支队长|大队长|所长|院长|校长|处长|主席|委员|教授|研究员|记者|通讯员"
_POST = re.compile(rf"^\S{{2,40}}?(?:{_POST_WORDS})$")
_NAME = re.compile(r"^[\u4e00-\u9fff·]{2,5}$")
_INLINE_BYLINE = re.compile(
    rf"^(?P<title>.+?)\s+(?P<post>\S{{2,40}}?(?:{_POST_WORDS}))\s+(?P<name>[\u4e00-\u9fff·]{{2,5}})$")
_EDITOR_NOTE = re.compile(r"^[—\-－]{1,3}\s*编\s*者\s*$")
_SUBTITLE = re.compile(r"^[—\-－]{2}")
_TRAILER = re.compile(r"^(?:责任编辑|责编|编辑|校对)[\s:：]")
MAX_TITLE = 80
MAX_HEADING = 60


@dataclass
class Line:
    start: int
    end: int   # trimmed: no surrounding whitespace


@dataclass
class Block:
    """A run of non-blank lines (a paragraph as printed)."""
    lines: list[Line]
    kind: str = "body"  # title | subtitle | byline | note | trailer | body

    @property
    def start(self) -> int:
        return self.lines[0].start

    @property
    def end(self) -> int:
        return self.lines[-1].end


@dataclass
class Paragraph:
    start: int
    end: int
    kind: str                      # header | body | note
    joins: tuple[int, ...] = ()    # raw offsets of joined page-break gaps
    level: int = 0                 # heading level this paragraph opens (0: none)
    heading: str = ""
    section: tuple[str, ...] = ()


@dataclass
class Article:
    title: str
    author: str
    affiliation: str
    start: int
    end: int
    paragraphs: list[Paragraph] = field(default_factory=list)


def split_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    cur: list[Line] = []
    pos = 0
    for raw_line in text.splitlines(keepends=True):
        body = raw_line.rstrip("\r\n")
        stripped = body.strip()
        if stripped:
            lead = len(body) - len(body.lstrip())
            cur.append(Line(pos + lead, pos + lead + len(stripped)))
        elif cur:
            blocks.append(Block(cur))
            cur = []
        pos += len(raw_line)
    if cur:
        blocks.append(Block(cur))
    return blocks


def _plain(text: str, line: Line) -> str:
    return text[line.start:line.end].replace("*", "").strip()


def heading_level(s: str) -> int:
    for level, pat in HEADING_PATTERNS:
        if pat.match(s):
            return level
    return 0


def ends_sentence(s: str) -> bool:
    s = s.rstrip()
    while s and s[-1] in CLOSERS:
        s = s[:-1]
    return bool(s) and s[-1] in FINAL


def unbalanced(s: str) -> bool:
    return any(s.count(o) > s.count(c) for o, c in OPENERS_TO_CLOSERS.items())


def _classify(text: str, blocks: list[Block]) -> None:
    """Mark structural blocks: titles, subtitles, bylines, editor's notes, trailers."""
    for i, b in enumerate(blocks):
        lines = [_plain(text, ln) for ln in b.lines]
        first = lines[0]
        if _EDITOR_NOTE.match(first) and len(lines) == 1:
            b.kind = "note"
        elif _TRAILER.match(first) and len(first) <= 40:
            b.kind = "trailer"
        elif _SUBTITLE.match(first) and len(first) <= MAX_TITLE and not ends_sentence(first):
            b.kind = "subtitle"
        elif _byline_in(lines) is not None:
            b.kind = "byline"
    # the first block of a file is its title when it reads like one
    if blocks and blocks[0].kind == "body" and _title_like(text, blocks[0]):
        blocks[0].kind = "title"
    for i, b in enumerate(blocks):
        if b.kind == "byline" and i > 0 and blocks[i - 1].kind == "body" \
                and _title_like(text, blocks[i - 1]) and _byline_in([_plain(text, ln) for ln in b.lines])[0] == 0:
            blocks[i - 1].kind = "title"


def _title_like(text: str, b: Block) -> bool:
    s = "".join(_plain(text, ln) for ln in b.lines)
    return 0 < len(s) <= MAX_TITLE and not ends_sentence(s) and heading_level(s) == 0


def _byline_in(lines: list[str]) -> tuple[int, str, str, str] | None:
    """(index of the first byline line, title part, post, name) when the block is a byline."""
    if lines and len(lines) <= 6:
        for k in range(len(lines) - 1):
            if _POST.match(lines[k]) and len(lines[k]) <= 40 and _NAME.match(lines[k + 1]) \
                    and k + 2 == len(lines):
                return k, "".join(lines[:k]), lines[k], lines[k + 1]
        m = _INLINE_BYLINE.match(lines[-1])
        if m and len(lines[-1]) <= MAX_TITLE + 50 and not ends_sentence(m.group("title")):
            title = "".join(lines[:-1]) + m.group("title")
            return len(lines) - 1, title, m.group("post"), m.group("name")
    return None


def parse(text: str, headings: Iterable[Heading] | None = None) -> list[Article]:
    """Articles of a decoded file, each with its paragraphs in reading order.

    `headings` are the ones the format marks (DOCX styles, HTML <h1>-<h6>): when given,
    they alone open sections (no regex guessing) and never join a neighbour."""
    blocks = _merge_split_bylines(text, split_blocks(text))
    if not blocks:
        return []
    marks = None if headings is None else {h.start: h.level for h in headings}
    _classify(text, blocks)
    # article starts: the title block before a byline (or the byline itself when it
    # carries its title inline); everything before the first start is the preface
    starts: list[int] = []
    for i, b in enumerate(blocks):
        if b.kind == "byline":
            starts.append(i - 1 if i > 0 and blocks[i - 1].kind == "title" and (i - 1) not in starts
                          else i)
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    bounds = list(zip(starts, starts[1:] + [len(blocks)]))
    return [_article(text, blocks[a:b], marks) for a, b in bounds]


def _merge_split_bylines(text: str, blocks: list[Block]) -> list[Block]:
    """A post line and a name line printed as two paragraphs (DOCX, HTML, PDF with a gap)
    are one byline block, as a text file prints them."""
    out: list[Block] = []
    for b in blocks:
        if out and len(b.lines) == 1 and len(out[-1].lines) == 1 \
                and _NAME.match(_plain(text, b.lines[0])) and _POST.match(_plain(text, out[-1].lines[0])) \
                and len(_plain(text, out[-1].lines[0])) <= 40:
            out[-1] = Block(out[-1].lines + b.lines)
        else:
            out.append(b)
    return out


def _article(text: str, blocks: list[Block], marks: dict[int, int] | None = None) -> Article:
    title, author, affiliation = "", "", ""
    for b in blocks:
        if b.kind == "byline":
            _, t, affiliation, author = _byline_in([_plain(text, ln) for ln in b.lines])
            title = title or t
            break
    if not title:
        first = next((b for b in blocks if b.kind == "title"), None)
        if first is not None:
            title = clean(text[first.start:first.end]).replace("\n", " ")
    if not author and any(b.kind == "note" for b in blocks):
        author = "编者"
    art = Article(title=_squash(title), author=author, affiliation=affiliation,
                  start=blocks[0].start, end=blocks[-1].end)
    # header: the leading run of title/subtitle/byline blocks becomes one paragraph
    i = 0
    while i < len(blocks) and blocks[i].kind in ("title", "subtitle", "byline"):
        i += 1
    if i:
        art.paragraphs.append(Paragraph(blocks[0].start, blocks[i - 1].end, "header"))
    runin = _runin_style(text, blocks[i:])
    paras = _join_page_breaks(text, blocks[i:], runin, marks)
    _assign_sections(text, paras, marks)
    art.paragraphs.extend(paras)
    return art


def _squash(s: str) -> str:
    return re.sub(r"\s+", " ", s.replace("*", "")).strip()


def _runin_style(text: str, blocks: list[Block]) -> bool:
    """True when most level-1 headings of the article run into their paragraph."""
    heads = [text[b.start:b.end] for b in blocks if b.kind == "body"
             and heading_level(_plain(text, b.lines[0])) == 1]
    runin = sum(1 for h in heads if "。" in h)
    return runin > len(heads) / 2


def _join_page_breaks(text: str, blocks: list[Block], runin: bool,
                      marks: dict[int, int] | None = None) -> list[Paragraph]:
    paras: list[Paragraph] = []
    k = 0
    while k < len(blocks):
        b = blocks[k]
        kind = "body" if b.kind in ("body", "title") else "note"
        start, end, joins = b.start, b.end, []
        while kind == "body" and k + 1 < len(blocks) and _continues(text, start, end, blocks[k + 1], runin, marks):
            joins.append(end)
            k += 1
            end = blocks[k].end
        paras.append(Paragraph(start, end, kind, tuple(joins)))
        k += 1
    return paras


def _continues(text: str, start: int, end: int, nxt: Block, runin: bool,
               marks: dict[int, int] | None = None) -> bool:
    """Was the paragraph [start, end) cut by a page break and continued in `nxt`?"""
    if nxt.kind != "body":
        return False
    cur = clean(text[start:end])
    if not cur or ends_sentence(cur):
        return False
    if marks is not None:
        return start not in marks and nxt.start not in marks
    following = _plain(text, nxt.lines[0])
    if heading_level(following):
        return False
    level = heading_level(cur)
    if level and "。" not in cur:
        # a heading line: joined only when visibly cut or when headings run in here
        return unbalanced(cur) or runin
    return True


def _assign_sections(text: str, paras: list[Paragraph], marks: dict[int, int] | None = None) -> None:
    path: dict[int, str] = {}
    for p in paras:
        if p.kind == "body":
            s = clean(text[p.start:p.end], p.joins, p.start)
            level = heading_level(s) if marks is None else marks.get(p.start, 0)
            if level and level < 5:
                head = _heading_text(s)
                path = {lv: h for lv, h in path.items() if lv < level}
                path[level] = head
                p.level, p.heading = level, head
        p.section = tuple(path[lv] for lv in sorted(path))


def _heading_text(s: str) -> str:
    first = re.split(r"[。！？!?\n]", s, maxsplit=1)[0]
    return first if len(first) <= MAX_HEADING else first[:MAX_HEADING - 1] + "…"


def runin_heading(s: str) -> str:
    """`一是有高站位` for a piece starting `一是有高站位。…` (level-5 run-in heading)."""
    if heading_level(s) == 5:
        return _heading_text(s)
    return ""
