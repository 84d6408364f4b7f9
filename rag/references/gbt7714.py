"""GB/T 7714-2015 reference entries (信息与文献 参考文献著录规则).

Journal article (4.4, 连续出版物中的析出文献):
    主要责任者. 题名[J]. 刊名, 年, 卷(期): 页码.
e.g. `王志忠. 聚焦主题主线，忠诚担当作为，以更高水平平安广东喜迎党的二十大[J]. 人民公安, 2022(2): 4-6.`
Rules followed: at most three authors, then `, 等` (8.1.2); an online copy is marked
`[J/OL]` and ends with its URL (4.4.1, 8.8); a part that is not known is left out rather
than guessed, with its separator. Without a journal an article is not a serial
contribution: it falls back to the type given (`M`, `R`, …), to `EB/OL` when it has a
URL, else to `Z` (其他未说明的文献类型, 附录B).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

SERIAL_TYPES = {"J", "N"}                # need a serial's title (journal, newspaper)
KNOWN_TYPES = {"M", "C", "G", "N", "J", "D", "R", "S", "P", "DB", "CP", "EB", "A", "Z", "CM", "DS"}
MAX_AUTHORS = 3
_SPLIT = re.compile(r"[、，,;；/]+|\s{1,}")
_LATIN = re.compile(r"[A-Za-z]")


@dataclass
class Work:
    """What is known about the article a passage belongs to; empty strings are unknown."""
    title: str = ""
    authors: list[str] = field(default_factory=list)
    type: str = ""
    journal: str = ""
    year: str = ""
    volume: str = ""
    issue: str = ""
    pages: str = ""
    url: str = ""
    doi: str = ""

    def kind(self) -> str:
        """The GB/T 7714 type code the entry uses (the fallbacks of the module docstring)."""
        t = (self.type or "").strip().upper().split("/")[0]
        t = t if t in KNOWN_TYPES else ""
        if self.journal:
            return t if t else "J"
        if t and t not in SERIAL_TYPES:
            return t
        return "EB" if self.url else "Z"


def split_authors(byline: str) -> list[str]:
    """Names in a byline: Chinese names split on 、，; and spaces; Latin names on commas/semicolons."""
    byline = (byline or "").strip()
    if not byline:
        return []
    if _LATIN.search(byline):
        return [a.strip() for a in re.split(r"[,;，；、]+|\band\b", byline) if a.strip()]
    return [a for a in _SPLIT.split(byline) if a]


def pages_text(pages: str) -> str:
    """`4–6`, `4~6`, `4 - 6` → `4-6`."""
    return re.sub(r"\s*[-–—~～至]+\s*", "-", (pages or "").strip())


def _authors(names: list[str]) -> str:
    if not names:
        return ""
    latin = any(_LATIN.search(n) for n in names)
    shown = ", ".join(names[:MAX_AUTHORS])
    if len(names) > MAX_AUTHORS:
        shown += ", et al" if latin else ", 等"
    return shown


def _serial_position(w: Work) -> str:
    """`2022, 36(2): 4-6` with whatever parts are known."""
    out = w.year.strip()
    vol, iss = w.volume.strip(), w.issue.strip()
    if vol:
        out += (", " if out else "") + vol
    if iss:
        out += f"({iss})"
    pages = pages_text(w.pages)
    if pages:
        out += (": " if out else "") + pages
    return out


def format_reference(w: Work) -> str:
    """The entry, ending with a full stop; empty when neither a title nor an author is known."""
    authors = _authors(w.authors)
    title = w.title.strip()
    if not title and not authors:
        return ""
    kind = w.kind()
    online = bool(w.url.strip())
    mark = f"{kind}/OL" if online and kind != "EB" else ("EB/OL" if kind == "EB" else kind)
    head = (f"{authors}. " if authors else "") + f"{title}[{mark}]"
    parts = [head]
    if kind in SERIAL_TYPES:
        pos = _serial_position(w)
        parts.append(w.journal.strip() + (f", {pos}" if pos else ""))
    elif kind == "EB":
        if w.year.strip():
            parts.append(f"({w.year.strip()})")
    else:
        pos = w.year.strip()
        pages = pages_text(w.pages)
        if pages:
            pos += (": " if pos else "") + pages
        if pos:
            parts.append(pos)
    if online:
        parts.append(w.url.strip())
    if w.doi.strip():
        parts.append(f"DOI: {w.doi.strip()}")
    text = ". ".join(p for p in parts if p)
    return text if text.endswith(".") else text + "."
