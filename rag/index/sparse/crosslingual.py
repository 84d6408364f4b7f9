"""English questions over Chinese text: dictionary translation of the keyword query.

The multilingual embedder understands an English question only roughly, and BM25 over
jieba tokens finds nothing in it. For a query written mostly in Latin letters, each
content word is looked up in an English-Chinese dictionary (the ~104k-entry EnWords table
shipped by the `cedict` package) and its first few Chinese senses become BM25 terms. A
word scores a passage by its best-matching sense only, so a word with many senses does
not outweigh a word with one.
"""
from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path

MAX_SENSES = 6
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_POS = re.compile(r"\b(?:n|adj|adv|vt|vi|v|vbl|prep|conj|pron|num|int|art|abbr|aux)\.")
_PAREN = re.compile(r"[(（\[][^)）\]]*[)）\]]")
_INFLECTED = re.compile(r"([a-z]+)\s*的(?:过去式|过去分词|复数|现在分词|第三人称单数|比较级|最高级)")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]{1,8}")
EN_STOP = frozenset("""a an the of to in on for and or is are was were be been being by with as at from
that this these those what which who whom whose how why when where does do did its it his her their
our your my he she they we you i me him them us will would shall should can could may might must
has have had not no than then there here into about over under up down out so such any some each
all both more most other very just also""".split())


def is_english(text: str) -> bool:
    """Mostly Latin letters: a question to translate rather than to cut with jieba."""
    letters = sum(1 for c in text if c.isascii() and c.isalpha())
    cjk = sum(1 for c in text if "\u4e00" <= c <= "\u9fff")
    return letters >= 3 and letters > 2 * cjk


@lru_cache(maxsize=1)
def _dictionary() -> dict[str, str]:
    try:
        import cedict
    except ImportError:
        return {}
    path = Path(cedict.__file__).parent / "csv" / "EnWords.csv"
    out: dict[str, str] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.reader(f):
            if len(row) >= 2:
                out.setdefault(row[0].strip().lower(), row[1])
    return out


def _lemmas(word: str) -> list[str]:
    w = word.lower().strip("'-")
    forms = [w]
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ing", "e"),
                         ("ed", ""), ("ed", "e"), ("'s", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            forms.append(w[: len(w) - len(suffix)] + repl)
    return forms


def senses(word: str, _depth: int = 0) -> list[str]:
    """Chinese renderings of an English word, most common first."""
    d = _dictionary()
    for form in _lemmas(word):
        entry = d.get(form)
        ref = _INFLECTED.search(entry or "")
        if ref and _depth < 2 and ref.group(1) != form:   # "wrote": "write的过去式"
            return senses(ref.group(1), _depth + 1)
        if entry:
            text = _PAREN.sub("", _POS.sub(",", entry))
            out = list(dict.fromkeys(_CJK_RUN.findall(text)))
            if out:
                return out[:MAX_SENSES]
    return []


def translate(query: str) -> list[list[str]]:
    """For each content word of an English query, its Chinese senses (empty words dropped)."""
    groups = []
    for w in _WORD.findall(query):
        if w.lower() in EN_STOP or len(w) < 2:
            continue
        s = senses(w)
        if s:
            groups.append(s)
    return groups
