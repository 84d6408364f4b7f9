"""Readers by suffix: the built-in ones plus any registered through `rag.readers` entry points.

A reader whose optional dependency is missing is still listed, so the file is skipped with
a warning that names the extra to install rather than silently ignored.
"""
from __future__ import annotations

import importlib

from rag.documents.base import Reader
from rag.plugins import Registry

READERS: Registry[Reader] = Registry("rag.readers", "reader")


def register_reader(reader: Reader) -> None:
    READERS.register(reader.name, reader)


def _builtins() -> None:
    from rag.documents.plaintext import PlainTextReader

    register_reader(PlainTextReader())
    try:
        importlib.import_module("rag.documents.formats")   # paged and markup formats register there
    except ImportError:
        pass


_builtins()


def reader_for_suffix() -> dict[str, Reader]:
    """Suffix (lower case, with the dot) -> reader; later registrations win."""
    out: dict[str, Reader] = {}
    for _name, r in READERS.items():
        for s in r.suffixes:
            out[s.lower()] = r
    return out


def suffixes() -> tuple[str, ...]:
    return tuple(sorted(reader_for_suffix()))
