"""Pages and boxes of a span of an indexed document, from the layout its reader stored.

Text files have no layout: (None, None, []). Paged readers store their layout as JSON in
the chunk store; `rag.documents.layout` turns it back into a Layout (when that module is
present), cached per store and source.
"""
from __future__ import annotations


def locate(store, source: str, start: int, end: int) -> tuple[int | None, int | None, list[list[float]]]:
    info = store.file_info(source)
    if not info or not info.get("layout"):
        return None, None, []
    from rag.documents.layout import from_json

    return from_json(info["layout"]).locate(start, end)
