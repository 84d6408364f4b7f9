"""The documented cleaning that turns a raw span of a file into a chunk's `text`.

A chunk's `text` is always `clean(raw[start:end], joins)`, where `joins` are the raw
offsets of page-break gaps inside the span (recorded on the chunk). The rules:

1. Markdown bold markers `**` are dropped.
2. Whitespace at the start or end of the span is dropped.
3. A whitespace run that begins at a recorded page-break join is dropped (the magazine's
   page break cut a sentence or word in two; the halves are glued back together).
4. A whitespace run holding a blank line (two or more newlines) is a paragraph break: `\\n`.
5. A run with one newline is a hard wrap inside a paragraph: dropped between two CJK
   characters when the line before it holds at least 20 characters (text wrapped at a
   fixed width), one space otherwise (short lines such as a title and a byline).
6. Any other run (spaces, tabs, U+3000) becomes one space.

`clean_map` also returns, for each cleaned character, the raw offset it came from, so any
position in a chunk's text maps back to exact characters of the original file.
"""
from __future__ import annotations

import re
from typing import Iterable

WRAP_MIN = 20
_WS = re.compile(r"[ \t\r\n\f\v\u3000\u00a0\u2002\u2003\u2009\ufeff]+|\*\*")


def is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (0x3000 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF
            or 0x20000 <= o <= 0x3FFFF)


def clean_map(raw: str, joins: Iterable[int] = (), offset: int = 0) -> tuple[str, list[int]]:
    """Cleaned text of `raw` and the raw index (plus `offset`) of each cleaned character.

    `joins` are absolute offsets (in the same frame as `offset`) where a joined page-break
    gap starts.
    """
    join_set = {j - offset for j in joins}
    out: list[str] = []          # runs of raw characters and replacements, joined at the end
    idx: list[int] = []
    last = ""                    # the last cleaned character ("" before the first)
    pos = 0
    n = len(raw)
    # runs, not characters, and the end of the visible text found once: copying character
    # by character and re-scanning the rest of the span at every whitespace run was ~20% of
    # a build's chunk-and-tokenize time (cProfile, bench_scale corpus)
    matches = list(_WS.finditer(raw))
    visible_end = n                  # from here on only whitespace and ** remain
    for m in reversed(matches):
        if m.end() != visible_end:
            break
        visible_end = m.start()
    for m in matches:
        s, e = m.span()
        if s > pos:
            out.append(raw[pos:s])
            idx.extend(range(pos + offset, s + offset))
            last = raw[s - 1]
        pos = e
        tok = m.group()
        if tok == "**" or not last:
            continue
        if e >= visible_end:
            continue
        if s in join_set:
            continue
        nl = tok.count("\n") if "\n" in tok else tok.count("\r")
        if nl >= 2:
            rep = "\n"
        elif nl == 1:
            nxt = _next_visible(raw, e)
            wrapped = s - (raw.rfind("\n", 0, s) + 1) >= WRAP_MIN
            rep = "" if (wrapped and is_cjk(last) and nxt and is_cjk(nxt)) else " "
        else:
            rep = " "
        # a run of raw characters never ends in " " or "\n" (both are whitespace): a last
        # character " " is a replacement, its own entry in `out`
        if rep and last not in " \n":
            out.append(rep)
            idx.append(s + offset)
            last = rep
        elif rep == "\n" and last == " ":
            out[-1] = "\n"
            last = "\n"
    if pos < n:
        out.append(raw[pos:])
        idx.extend(range(pos + offset, n + offset))
    return "".join(out), idx


def _next_visible(raw: str, i: int) -> str:
    while raw.startswith("**", i):
        i += 2
    return raw[i] if i < len(raw) else ""


def clean(raw: str, joins: Iterable[int] = (), offset: int = 0) -> str:
    return clean_map(raw, joins, offset)[0]
