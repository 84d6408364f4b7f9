"""Query- and passage-time embedding (no build-time conversion here: that is rag.models)."""
from rag.embed.base import DEFAULT_EMBEDDER, Embedder, has_cuda, same_vectors, show_progress
from rag.embed.factory import get_embedder

__all__ = ["DEFAULT_EMBEDDER", "Embedder", "get_embedder", "has_cuda", "same_vectors", "show_progress"]
