"""Checks of what users type: one place, one-line errors (the CLI, the UI and the API share them)."""
from __future__ import annotations

import re

import numpy as np

from rag.errors import BadInput, BadK, EmptyInput, InputTooLong

MAX_QUERY_CHARS = 4000
MAX_K = 100
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_input(value: object, what: str, limit: int) -> str:
    """Text fit to look up, or a one-line error saying what is wrong with it."""
    if not isinstance(value, str):
        raise BadInput(f"the {what} must be text")
    q = value.encode("utf-8", "replace").decode("utf-8")   # lone surrogates
    q = _CONTROL.sub(" ", q).strip()
    if not q:
        raise EmptyInput(f"the {what} is empty")
    if len(q) > limit:
        raise InputTooLong(f"the {what} is {len(q)} characters long; the limit is {limit}", len(q), limit)
    return q


def clean_query(query: object) -> str:
    return clean_input(query, "query", MAX_QUERY_CHARS)


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer, float, np.floating)) \
            or (isinstance(k, (float, np.floating)) and not np.isfinite(k)) or int(k) != k:
        raise BadK(f"k must be a whole number, not {_short(repr(k))}")
    if not 1 <= int(k) <= MAX_K:
        raise BadK(f"k must be between 1 and {MAX_K}, not {_short(str(int(k)))}")
    return int(k)


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


