"""Files in and out: one hardened reader for every input file, result writers, the batch
loop, and retrieval metrics."""
from rag.batchio.batch import answer, chunked
from rag.batchio.readers import INPUT_KINDS, MAX_LINE_BYTES, Item, open_text, read_items
from rag.batchio.writers import CSV_FIELDS, Writer, csv_safe

__all__ = ["answer", "chunked", "INPUT_KINDS", "MAX_LINE_BYTES", "Item", "open_text", "read_items",
           "CSV_FIELDS", "Writer", "csv_safe"]
