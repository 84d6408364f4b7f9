"""RIS records (the tagged format NoteExpress, EndNote and Zotero all import).

One record per passage: the article's bibliographic fields, then the passage's exact
location and text in `N1` (not `AB`: that is the abstract of the whole work)."""
from __future__ import annotations

from typing import Iterable

from rag.references.gbt7714 import Work, pages_text

RIS_TYPES = {"J": "JOUR", "N": "NEWS", "M": "BOOK", "C": "CONF", "D": "THES", "R": "RPRT",
             "S": "STAND", "P": "PAT", "EB": "ELEC", "DB": "DBASE", "CP": "COMP", "A": "CHAP",
             "G": "BOOK", "Z": "GEN"}


def _clean(value: str) -> str:
    return " ".join(str(value).split())      # one line per tag


def ris_record(w: Work, location: str = "", passage: str = "") -> str:
    """One RIS record, CRLF-free lines `TAG  - value`, ending with `ER  - `."""
    lines = [("TY", RIS_TYPES.get(w.kind(), "GEN"))]
    lines += [("AU", a) for a in w.authors]
    lines.append(("TI", w.title))
    if w.journal:
        lines += [("T2", w.journal), ("JO", w.journal)]
    lines += [("PY", w.year), ("VL", w.volume), ("IS", w.issue)]
    first, _, last = pages_text(w.pages).partition("-")
    lines += [("SP", first), ("EP", last), ("UR", w.url), ("DO", w.doi)]
    note = "；".join(x for x in (location, passage and f"“{passage}”") if x)
    lines.append(("N1", note))
    body = "\n".join(f"{tag}  - {_clean(v)}" for tag, v in lines if v and _clean(v))
    return body + "\nER  - \n"


def ris_records(records: Iterable[tuple[Work, str, str]]) -> str:
    return "\n".join(ris_record(w, loc, text) for w, loc, text in records)
