"""From a passage (a result or cite-match dict) to its article's reference.

Author and title come from the article's byline and heading (the passage's own `author`
and `title`); journal, year, volume, issue, pages, URL and type from the corpus's
`metadata.csv`, else from the document's own properties (PDF/DOCX metadata, as its reader
stored them), and pages from the PDF's page numbers where the article's chunks have them.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Mapping

from rag.references.gbt7714 import Work, format_reference, split_authors
from rag.references.metadata import FIELDS, METADATA_FILE, CorpusMetadata, read_metadata

_META_KEYS = {"journal": ("journal", "publication", "container_title"), "year": ("year",),
              "volume": ("volume",), "issue": ("issue", "number"), "pages": ("pages",),
              "url": ("url",), "type": ("type",), "doi": ("doi",)}


def location_text(r: Mapping) -> str:
    """The exact location of a passage: file, section path, paragraph, page, character range."""
    parts = [str(r.get("source") or "")]
    section = [s for s in (r.get("section") or []) if s]
    if section:
        parts.append(" › ".join(section))
    if r.get("paragraph"):
        parts.append(f"第{r['paragraph']}段")
    page, page_end = r.get("page"), r.get("page_end")
    if page:
        parts.append(f"第{page}页" if not page_end or page_end == page else f"第{page}–{page_end}页")
    parts.append(f"字符 {r.get('start')}–{r.get('end')}")
    return "，".join(p for p in parts if p)


class Referencer:
    """References of one library: its index (for document properties and article pages) and
    corpus folder (for metadata.csv, re-read when it changes)."""

    def __init__(self, corpus: Path | None, warn: Callable[[str], None] = lambda _m: None) -> None:
        self.corpus = Path(corpus) if corpus else None
        self.warn = warn
        self._lock = threading.Lock()
        self._meta: tuple[float, CorpusMetadata] | None = None

    def metadata(self) -> CorpusMetadata:
        stamp = 0.0
        if self.corpus is not None:
            try:
                stamp = os.stat(self.corpus / METADATA_FILE).st_mtime
            except OSError:
                stamp = -1.0
        with self._lock:
            if self._meta is None or self._meta[0] != stamp:
                self._meta = (stamp, read_metadata(self.corpus, self.warn))
            return self._meta[1]

    def work(self, r: Mapping, index=None) -> Work:
        source, article = r.get("source") or "", r.get("article")
        row = self.metadata().lookup(source, article)
        props = _properties(index, source)
        w = Work(title=(r.get("title") or props.get("title") or "").strip(),
                 authors=split_authors(r.get("author") or props.get("author") or ""))
        for name in FIELDS:
            value = row.get(name) or next((str(props[k]) for k in _META_KEYS.get(name, ())
                                           if props.get(k)), "")
            setattr(w, name, value)
        w.doi = next((str(props[k]) for k in _META_KEYS["doi"] if props.get(k)), "")
        if not w.pages:
            w.pages = _article_pages(index, source, article)
        if not w.title:
            w.title = Path(source).stem      # the document's own name: a title is required
        return w

    def reference(self, r: Mapping, index=None) -> str:
        return format_reference(self.work(r, index))


def _properties(index, source: str) -> dict:
    if index is None or not source:
        return {}
    cache = index.cache.setdefault("doc_properties", {})
    if source not in cache:
        try:
            info = index.store.file_info(source) or {}
        except Exception:  # noqa: BLE001 - an older store: no properties
            info = {}
        meta = info.get("meta") or {}
        cache[source] = {str(k).lower(): v for k, v in meta.items() if isinstance(v, (str, int))}
    return cache[source]


def _article_pages(index, source: str, article) -> str:
    """`first-last` page of the article's chunks in a paged document; "" when unknown."""
    if index is None or article is None or "page" not in getattr(index.store, "cols", ()):
        return ""
    cache = index.cache.setdefault("article_pages", {})
    key = (source, int(article))
    if key not in cache:
        row = index.store.con.execute(
            'SELECT min(page), max(coalesce(page_end, page)) FROM chunks WHERE source=? AND article=?',
            key).fetchone()
        lo, hi = row if row else (None, None)
        cache[key] = "" if not lo else (str(lo) if not hi or hi == lo else f"{lo}-{hi}")
    return cache[key]
