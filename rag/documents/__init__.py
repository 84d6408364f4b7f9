"""Documents: find files, read each with the reader for its format, one canonical text each.

Plug-in point: a `Reader` (rag.documents.base) registered by name and suffix
(`register_reader`, or the `rag.readers` entry-point group).
"""
from rag.documents.base import Document, Heading, Layout, Reader, SkipDocument
from rag.documents.corpus import iter_paths, load_corpus, read_document, relative_source, warn
from rag.documents.plaintext import SUFFIXES, decode, detect_encoding
from rag.documents.registry import READERS, register_reader, suffixes

__all__ = ["Document", "Heading", "Layout", "Reader", "SkipDocument", "iter_paths", "load_corpus",
           "read_document", "relative_source", "warn", "SUFFIXES", "decode", "detect_encoding",
           "READERS", "register_reader", "suffixes"]
