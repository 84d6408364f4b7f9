"""The Milvus backend against real milvus-lite: build, search, cite, updates by file, full
rebuilds behind an alias, typed errors, `rag check`, durability (SIGKILL mid-build,
searches during an update, no confirmed row lost). Each test has its own `.db` folder,
released in teardown. Opt-in against a real server: RAG_MILVUS_TEST_URI=http://host:19530.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the milvus extra is not installed (pip install 'rag[milvus]')")
pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install 'rag[milvus]')")

from conftest import REPO  # noqa: E402

from rag.errors import BackendError, IndexDamaged, IndexMismatch  # noqa: E402

DOCS = {
    "a.txt": "关于加强基层派出所建设的意见\n\n各地公安机关要坚持把基层派出所建设摆在突出位置，"
             "推动警力下沉，落实“一村一警”制度，提升群众安全感和满意度。\n\n"
             "要完善社区警务工作机制，加强矛盾纠纷排查化解，做到小事不出村、大事不出镇。",
    "b.txt": "网络安全保卫工作要点\n\n严厉打击电信网络诈骗犯罪，深入开展“断卡”行动，"
             "加强对涉诈银行卡和电话卡的治理。\n\n强化关键信息基础设施安全保护，落实网络安全等级保护制度。",
    "c.txt": "交通管理工作总结\n\n全年查处酒驾醉驾违法行为一万余起，道路交通事故死亡人数同比下降百分之十二。\n\n"
             "推进高速公路服务区警务室建设，提高恶劣天气条件下的应急处置能力。",
}
QUERIES = ["派出所警力下沉", "电信网络诈骗 断卡行动", "酒驾醉驾查处", "高速公路恶劣天气应急"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    d = tmp_path / "corpus"
    d.mkdir()
    for name, text in DOCS.items():
        (d / name).write_text(text, encoding="utf-8")
    return d


@pytest.fixture
def uri(tmp_path: Path):
    from rag.index.milvus import release

    server = os.environ.get("RAG_MILVUS_TEST_URI")
    u = server or str(tmp_path / "m.db")
    yield u
    release()


@pytest.fixture
def collection(uri):
    """A collection alias of its own (on a shared server), dropped afterwards."""
    name = f"t{os.getpid()}_{threading.get_ident() % 10**6}"
    yield name
    if uri.startswith("http"):
        from rag.index.milvus import connection

        c = connection.client(connection.Target(uri, os.environ.get("RAG_MILVUS_TOKEN", ""), name))
        for n in c.list_collections():
            if n.startswith(name):
                for a in c.list_aliases(collection_name=n).get("aliases", []):
                    c.drop_alias(a)
                c.drop_collection(n)


def _build(corpus, idx, uri, collection, **kw):
    from rag.index import build

    return build(corpus, idx, backend="milvus", uri=uri, collection=collection, **kw)


def _top(index, queries=QUERIES, k=3):
    from rag.search import Searcher

    s = Searcher(index)
    return [[(r.source, r.start, r.end, round(r.score, 4)) for r in res]
            for res in s.search_many(queries, k=k)]


def test_build_search_cite_check_and_same_ranking_as_faiss(corpus, tmp_path, uri, collection):
    from rag.cite import Citer
    from rag.index import build, load, read_manifest, verify

    rep = _build(corpus, tmp_path / "idx", uri, collection)
    assert rep.files == 3 and rep.chunks > 3 and rep.embedded == rep.chunks
    m = read_manifest(tmp_path / "idx")
    assert m["backend"] == "milvus" and m["milvus"]["alias"] == collection
    idx = load(tmp_path / "idx")                       # no flags: the manifest names the backend
    assert type(idx).__name__ == "MilvusIndex" and idx.store.count() == rep.chunks
    got = _top(idx)
    assert [r[0][0] for r in got] == ["a.txt", "b.txt", "c.txt", "c.txt"]
    # the local FAISS index of the same corpus ranks the same passages with the same scores
    build(corpus, tmp_path / "local", backend="faiss")
    want = _top(load(tmp_path / "local"))
    assert [[x[:3] for x in r] for r in got] == [[x[:3] for x in r] for r in want]
    assert np.allclose([x[3] for r in got for x in r], [x[3] for r in want for x in r], atol=1e-3)
    # citation lookup on the Milvus-backed index
    quote = "推进高速公路服务区警务室建设"
    match = Citer(idx).lookup(quote, k=1).matches[0]
    text = DOCS["c.txt"]
    assert match.source == "c.txt" and text[match.start:match.end] == quote
    assert verify(tmp_path / "idx")["counts"]["chunks"] == rep.chunks


def test_update_by_file_and_rebuild_behind_alias(corpus, tmp_path, uri, collection, monkeypatch):
    from rag.index import load, read_manifest
    from rag.index.milvus import builder, connection

    idx_dir = tmp_path / "idx"
    first = _build(corpus, idx_dir, uri, collection)
    assert _build(corpus, idx_dir, uri, collection).up_to_date
    (corpus / "b.txt").write_text(DOCS["b.txt"].replace("断卡", "净网"), encoding="utf-8")
    (corpus / "c.txt").unlink()
    (corpus / "d.txt").write_text("禁毒工作\n\n深入推进禁毒人民战争，严厉打击制贩毒品犯罪。", encoding="utf-8")
    rep = _build(corpus, idx_dir, uri, collection)
    assert (rep.added, rep.changed, rep.removed) == (["d.txt"], ["b.txt"], ["c.txt"])
    assert rep.reused >= 1                     # unchanged paragraphs of b.txt kept their vectors
    idx = load(idx_dir)
    m = idx.manifest
    assert idx.store.count() == m["counts"]["chunks"] == idx.sparse.stats.docs
    assert [f for f, _s, _e in idx.store.files()] == ["a.txt", "b.txt", "d.txt"]
    assert _top(idx, ["制贩毒品"])[0][0][0] == "d.txt"
    assert all(r[0] != "c.txt" for r in _top(idx, ["酒驾醉驾查处"], k=5)[0])
    assert "净网" in idx.store.file_text("b.txt") and idx.store.file_text("c.txt") is None
    # replaced rows stay hidden until an update after the grace period deletes them
    c = connection.client(connection.resolve(m))
    name = m["milvus"]["collection"]
    a, b, _t = m["milvus"]["retired"][0]
    assert len(c.query(name, filter=f"pos >= {a} and pos < {b}", output_fields=["pos"])) == b - a
    monkeypatch.setattr(builder, "RETIRE_GRACE_S", 0.0)
    (corpus / "d.txt").write_text("禁毒工作\n\n深入推进禁毒人民战争，严厉打击制贩毒品犯罪活动。", encoding="utf-8")
    _build(corpus, idx_dir, uri, collection)
    assert c.query(name, filter=f"pos >= {a} and pos < {b}", output_fields=["pos"]) == []
    idx = load(idx_dir)
    m = idx.manifest
    assert idx.store.count() == m["counts"]["chunks"] == idx.sparse.stats.docs
    # an update gives the ranking a fresh full build gives
    (tmp_path / "again").mkdir()
    fresh = _build(corpus, tmp_path / "again", uri, collection + "_b")
    assert fresh.chunks == m["counts"]["chunks"]
    assert [[x[:3] for x in r] for r in _top(idx)] == [[x[:3] for x in r] for r in _top(load(tmp_path / "again"))]
    # a full rebuild goes to a new collection and moves the alias; the old one stays one generation
    name0 = m["milvus"]["collection"]
    rebuilt = _build(corpus, idx_dir, uri, collection, rebuild=True)
    m2 = read_manifest(idx_dir)
    assert m2["milvus"]["collection"] != name0 and rebuilt.chunks == m["counts"]["chunks"]
    c = connection.client(connection.resolve(m2))
    assert c.describe_alias(collection)["collection_name"] == m2["milvus"]["collection"]
    assert c.has_collection(name0)
    _build(corpus, idx_dir, uri, collection, rebuild=True)
    assert not c.has_collection(name0)         # two rebuilds later it is dropped
    assert first.chunks > 0


def test_typed_errors(corpus, tmp_path, uri, collection, monkeypatch):
    from rag.index import load, verify
    from rag.index.milvus import connection, release, schema

    with pytest.raises(BackendError, match="cannot reach Milvus"):
        monkeypatch.setattr(connection, "CONNECT_TIMEOUT_S", 2.0)
        _build(corpus, tmp_path / "x", "http://127.0.0.1:9", collection)
    with pytest.raises(BackendError, match="not a Milvus URI"):
        _build(corpus, tmp_path / "x", "ftp://nowhere", collection)
    idx_dir = tmp_path / "idx"
    _build(corpus, idx_dir, uri, collection)
    m = load(idx_dir).manifest
    c = connection.client(connection.resolve(m))
    # a tampered vector is found by `rag check`
    name = m["milvus"]["collection"]
    pos = int(next(iter(m["milvus"]["sample"])))
    row = c.query(name, filter=f"pos == {pos}", output_fields=["*"])[0]
    row["vec"] = list(np.asarray(row["vec"]) * -1)
    c.upsert(name, [row])
    with pytest.raises(IndexDamaged, match="sampled vectors"):
        verify(idx_dir)
    # a collection of another shape under our name
    c.drop_alias(collection)
    c.drop_collection(name)
    with pytest.raises(BackendError, match="missing"):
        load(idx_dir)
    c.drop_collection(schema.files_name(name))
    schema.create(c, name, 8, "flat")
    with pytest.raises(IndexMismatch, match="8-dimensional"):
        load(idx_dir)
    if not uri.startswith("http"):
        # milvus-lite serves one process: another one gets a one-line error, not a traceback
        release()
        c = connection.client(connection.resolve(m))
        code = ("from rag.index import load\nfrom rag.errors import BackendError\ntry:\n"
                f" load({str(idx_dir)!r})\nexcept BackendError as e:\n print('ERR', e)")
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert "ERR the embedded Milvus database" in out.stdout and "another process" in out.stdout


def test_no_confirmed_row_lost_under_concurrent_writers(tmp_path, uri, collection, monkeypatch):
    """Writers in several threads, and an insert that silently drops rows: every row counts."""
    from rag.index.milvus import builder, connection, schema

    t = connection.Target(uri if uri.startswith("http") else connection.normalise_uri(uri), "", collection)
    c = connection.client(t)
    name = f"{collection}_g999999"
    schema.create(c, name, 4, "flat")
    w = builder._Writer(t, c, name)

    def rows(lo, hi):
        return [{"pos": i, "id": str(i), "source": "s", "cstart": 0, "cend": 1, "title": "", "author": "",
                 "text": "x", "record": "{}", "vec": [1.0, 0, 0, 0], "kw": {1: 1.0}} for i in range(lo, hi)]

    real_insert = c.insert
    dropped = {"n": 0}

    def lossy(coll, batch):             # confirms the batch, keeps only half of it once
        if dropped["n"] == 0 and len(batch) > 10:
            dropped["n"] = len(batch) // 2
            return real_insert(coll, batch[: len(batch) - dropped["n"]])
        return real_insert(coll, batch)

    monkeypatch.setattr(c, "insert", lossy)
    threads = [threading.Thread(target=w.insert_checked, args=(rows(k * 300, (k + 1) * 300), "pos"))
               for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert dropped["n"] > 0
    assert w.count("pos >= 0") == 1200
    c.drop_collection(name)
    c.drop_collection(schema.files_name(name))


def _cli(*args, env=None, timeout=300):
    e = {k: v for k, v in os.environ.items() if k != "RAG_DEBUG"}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "rag", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=e)


@pytest.mark.skipif(bool(os.environ.get("RAG_MILVUS_TEST_URI")), reason="milvus-lite process lock only")
def test_sigkill_mid_build_keeps_previous_state_and_cli(corpus, tmp_path, uri, collection):
    from rag.index import load
    from rag.index.milvus import release

    idx_dir = tmp_path / "idx"
    out = _cli("build", "--corpus", corpus, "--index", idx_dir, "--backend", "milvus", "--milvus-uri", uri,
               "--milvus-collection", collection)
    assert out.returncode == 0, out.stderr
    before = _top(load(idx_dir))
    release()
    (corpus / "a.txt").write_text(DOCS["a.txt"] + "\n\n新增段落：推进智慧警务建设。", encoding="utf-8")
    for point, extra in (("milvus-mid-insert", ()), ("milvus-mid-insert", ("--rebuild",))):
        killed = _cli("build", "--corpus", corpus, "--index", idx_dir, *extra, env={"RAG_CRASH_AT": point})
        assert killed.returncode == -9, (point, killed.stderr)
        assert _top(load(idx_dir)) == before, point      # the previous state, same results
        release()
    ok = _cli("build", "--corpus", corpus, "--index", idx_dir)      # no flags needed any more
    assert ok.returncode == 0 and "~1" in ok.stdout, ok.stderr
    check = _cli("check", "--index", idx_dir)
    assert check.returncode == 0 and check.stdout.startswith("ok:"), check.stderr
    assert _top(load(idx_dir), ["智慧警务"], k=1)[0][0][0] == "a.txt"


def test_searches_never_fail_during_updates(corpus, tmp_path, uri, collection):
    from rag.index import load
    from rag.search import Searcher

    idx_dir = tmp_path / "idx"
    _build(corpus, idx_dir, uri, collection)

    def snapshot():
        s = Searcher(load(idx_dir))
        return s, [[(r.source, r.start) for r in res] for res in s.search_many(QUERIES, k=3)]

    current = [snapshot()]
    errors, answered, stop = [], [0], threading.Event()

    def reader():
        while not stop.is_set():
            snap, before = current[0]
            try:
                got = [[(r.source, r.start) for r in res] for res in snap.search_many(QUERIES, k=3)]
                if got != before:      # a snapshot sees its own generation throughout
                    errors.append(f"changed under a reader: {got} != {before}")
                answered[0] += 1
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    try:
        for i in range(3):
            (corpus / "b.txt").write_text(DOCS["b.txt"] + f"\n\n第{i}次修订。", encoding="utf-8")
            _build(corpus, idx_dir, uri, collection)
            current[0] = snapshot()   # readers move on to the new generation, as the app does
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not errors, errors[:3]
    assert answered[0] > 0
    idx = load(idx_dir)
    assert idx.store.count() == idx.manifest["counts"]["chunks"]
