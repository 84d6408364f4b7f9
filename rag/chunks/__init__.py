"""Chunks: document structure (articles, bylines, headings), the documented cleaning, the
chunker, and the one citation record every later stage shares."""
from rag.chunks.chunker import ChunkSettings, chunk_document, chunk_id, embed_text
from rag.chunks.citation import CHUNK_FIELDS, CITATION_FIELDS, Chunk, Citation

__all__ = ["ChunkSettings", "chunk_document", "chunk_id", "embed_text", "Chunk", "Citation",
           "CHUNK_FIELDS", "CITATION_FIELDS"]
