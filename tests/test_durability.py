"""Durability of the on-disk index: a build killed (SIGKILL) at any point leaves a loadable,
checkable index that answers exactly as before; the next build finishes the job and sweeps
up what the killed one left. Damaged files (truncated or with one flipped bit) are refused
by load() and `rag check` with one line naming the file and the rebuild command.

Crash points are `RAG_CRASH_AT=<point>` hooks in rag.index.builder (CRASH_POINTS); the killed
builds run with RAG_MERGE_FACTOR=2, so the update merges the old segment with the new one and
"during-merge" / "after-merge" kill it in the middle of a merge. Everything runs on the tiny
corpus of conftest (a handful of chunks), so a killed build costs a few seconds, most of it
the subprocess starting.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rag import cli
from rag.errors import RagError
from rag.index import CRASH_POINTS, build, load, read_current
from rag.search import Searcher

from conftest import REPO, TINY_DOCS_V2, TINY_EMBEDDER, run_cli, write_corpus

QUERIES = ["马背警务 户籍", "大熊猫 盗猎", "珊瑚礁 渔船", "骆驼 沙漠 游客", "民宿 蜂蜜"]


def answers(index_dir: Path) -> list[list[tuple]]:
    idx = load(index_dir)
    try:
        s = Searcher(idx)
        return [[(r.source, r.start, r.end, round(r.score, 4)) for r in s.search(q, k=5)]
                for q in QUERIES]
    finally:
        idx.store.close()


def tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `folder`."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def check(index_dir: Path, capsys) -> tuple[int, str, str]:
    """`rag check --index DIR` through the CLI entry point: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli.main(["check", "--index", str(index_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def leftovers(index_dir: Path) -> list[str]:
    """Temporary files, and segments no commit point on disk lists."""
    out = sorted(p.name for p in index_dir.iterdir() if p.name.startswith((".tmp-", ".CURRENT.")))
    listed = set()
    for m in index_dir.glob("gen-*/manifest.json"):
        listed |= {s["name"] for s in json.loads(m.read_text(encoding="utf-8"))["segments"]}
    seg_root = index_dir / "segments"
    if seg_root.is_dir():
        out += sorted(f"segments/{p.name}" for p in seg_root.iterdir() if p.name not in listed)
    return out


@pytest.fixture(scope="module")
def world(tiny_index, tmp_path_factory):
    """The tiny index (corpus v1) with its answers, corpus v2, and a clean build of v2."""
    corpus1, index1 = tiny_index
    root = tmp_path_factory.mktemp("durability")
    corpus2 = write_corpus(root / "corpus2", TINY_DOCS_V2)
    clean2 = root / "clean2"
    build(corpus2, clean2, embedder=TINY_EMBEDDER)
    return {"corpus1": corpus1, "index1": index1, "gen1": read_current(index1),
            "answers1": answers(index1), "corpus2": corpus2, "answers2": answers(clean2)}


def copy_index(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------ killed builds

@pytest.fixture(scope="module")
def crashed(world, tmp_path_factory) -> dict[str, tuple[Path, int, str]]:
    """`rag build` of corpus v2 killed at each crash point, each on its own copy of the v1
    index (and one on an empty folder: "first"); all at once, they are independent.
    Returns point -> (index, exit code, stderr)."""
    root = tmp_path_factory.mktemp("crashed")
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_DEBUG", "RAG_CORPUS", "RAG_INDEX")}
    procs = {}
    for point in (*CRASH_POINTS, "first"):
        index = root / point
        if point != "first":
            copy_index(world["index1"], index)
        cmd = [sys.executable, "-m", "rag", "build", "--corpus", str(world["corpus2"]), "--index", str(index),
               "--embedder", TINY_EMBEDDER]
        procs[point] = (index, subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**env, "RAG_MERGE_FACTOR": "2",
                 "RAG_CRASH_AT": "after-rename" if point == "first" else point}))
    out = {}
    for point, (index, proc) in procs.items():
        _, err = proc.communicate(timeout=240)
        out[point] = (index, proc.returncode, err)
    return out


def test_crash_points_are_distinct_and_ordered(world, tmp_path, monkeypatch):
    """An update that merges passes every point, once each, in the order CRASH_POINTS lists."""
    assert len(set(CRASH_POINTS)) == len(CRASH_POINTS) == 7
    import rag.index.builder as builder_mod
    from rag import settings

    passed = []
    monkeypatch.setattr(builder_mod, "_crash_point", passed.append)
    monkeypatch.setenv("RAG_MERGE_FACTOR", "2")
    settings.get.cache_clear()
    index = copy_index(world["index1"], tmp_path / "index")
    build(world["corpus2"], index)
    assert passed == list(CRASH_POINTS)


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_build_leaves_a_working_index(world, crashed, capsys, point):
    index, returncode, stderr = crashed[point]
    gen1_files = tree(world["index1"] / world["gen1"])
    assert world["answers1"] != world["answers2"], "the corpus change must change the answers"
    assert returncode == -signal.SIGKILL, (returncode, stderr[-2000:])

    switched = point == "after-switch"
    cur = read_current(index)
    assert (cur != world["gen1"]) if switched else (cur == world["gen1"])
    assert answers(index) == (world["answers2"] if switched else world["answers1"])
    code, out, err = check(index, capsys)
    assert code == 0 and out.startswith("ok:") and cur in out, err
    assert tree(index / world["gen1"]) == gen1_files, "the previous generation is never touched"
    # (the new segment, or after a merge the segments it merged, stay until the next build sweeps)
    expect_tmp = point != "after-embed"
    assert bool(leftovers(index)) == expect_tmp, leftovers(index)
    if point == "after-rename":             # renamed into place, but CURRENT never named it
        assert sorted(p.name for p in index.glob("gen-*")) == [world["gen1"], "gen-000002"]

    if not switched:
        # an up-to-date build (corpus v1 again) changes nothing but sweeps the leftovers
        report = build(world["corpus1"], index)
        assert report.up_to_date and read_current(index) == world["gen1"]
        assert leftovers(index) == [] and [p.name for p in index.glob("gen-*")] == [world["gen1"]]

    # the next real build succeeds, answers like a clean build, and leaves nothing behind;
    # what the killed build embedded was saved and is not embedded again
    report = build(world["corpus2"], index)
    assert report.up_to_date == switched
    assert report.embedded == 0, (point, report.summary())
    assert answers(index) == world["answers2"]
    assert leftovers(index) == []
    gens = sorted(p.name for p in index.glob("gen-*"))
    assert read_current(index) == gens[-1] and len(gens) <= 2, gens
    assert check(index, capsys)[0] == 0


def test_killed_first_build_is_reported_then_replaced(world, crashed, capsys):
    index, returncode, stderr = crashed["first"]
    assert returncode == -signal.SIGKILL, stderr[-2000:]
    assert read_current(index) is None and (index / "gen-000001").is_dir()
    code, out, err = check(index, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "CURRENT is missing" in err and "gen-000001" in err and "rag build --rebuild" in err
    report = build(world["corpus2"], index, embedder=TINY_EMBEDDER)
    assert report.generation == "gen-000002" and not report.up_to_date
    assert [p.name for p in index.glob("gen-*")] == ["gen-000002"]
    assert answers(index) == world["answers2"]


# ------------------------------------------------------------------ damaged files

BM25_FILES = ["terms.txt", "indptr.npy", "rows.npy", "tf.npy", "doclen.npy"]
CITE_FILES = ["origin.npy", "ids.npy", "keys.npy", "starts.npy", "postings.npy", "vocab.npy", "file_starts.npy",
              "sources.txt"]
COMMIT_FILES = ["manifest.json", "words.txt"]
SEGMENT_FILES = (["segment.json", "store.sqlite", "vectors.npy"] + [f"bm25/{n}" for n in BM25_FILES]
                 + [f"cite/{n}" for n in CITE_FILES])
INDEX_FILES = ["CURRENT"] + COMMIT_FILES + SEGMENT_FILES


def target(index: Path, name: str) -> Path:
    if name == "CURRENT":
        return index / name
    gen = read_current(index)
    if name in COMMIT_FILES:
        return index / gen / name
    m = json.loads((index / gen / "manifest.json").read_text(encoding="utf-8"))
    return index / "segments" / m["segments"][0]["name"] / name


def truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[:len(data) // 2])


def flip_bit(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


def test_damage_table_covers_every_file(world):
    gen_dir = world["index1"] / world["gen1"]
    seg_dir = target(world["index1"], "vectors.npy").parent
    on_disk = {p.relative_to(gen_dir).as_posix() for p in gen_dir.rglob("*") if p.is_file()}
    on_disk |= {p.relative_to(seg_dir).as_posix() for p in seg_dir.rglob("*") if p.is_file()}
    assert on_disk | {"CURRENT"} == set(INDEX_FILES)
    assert [p.name for p in (world["index1"] / "segments").iterdir()] == [seg_dir.name]
    assert all(target(world["index1"], n).stat().st_size > 1 for n in INDEX_FILES)


def assert_refused(index: Path, capsys, name: str) -> str:
    """load() and `rag check` / `rag query` refuse `index` with one line naming `name`."""
    with pytest.raises(RagError) as e:
        load(index)
    msg = str(e.value)
    assert "\n" not in msg and "damaged" in msg and f"rag build --rebuild --index {index}" in msg, msg
    assert name in msg, msg
    for argv in (["check", "--index", str(index)], ["query", "熊猫", "--index", str(index)]):
        capsys.readouterr()
        code = cli.main(argv)
        out, err = capsys.readouterr()
        assert code == 2 and out == "", (argv, out)
        assert err.splitlines() == [f"error: {msg}"], err
    return msg


@pytest.mark.parametrize("damage", [truncate, flip_bit], ids=["truncated", "bit-flipped"])
@pytest.mark.parametrize("name", INDEX_FILES)
def test_damaged_file_is_refused_by_name(world, tmp_path, capsys, name, damage):
    index = copy_index(world["index1"], tmp_path / "index")
    damage(target(index, name))
    before = tree(index)
    assert_refused(index, capsys, name)
    # an incremental build refuses it too (it would otherwise reuse damaged vectors)
    with pytest.raises(RagError, match="rag build --rebuild"):
        build(world["corpus1"], index)
    assert tree(index) == before, "refusing touches nothing"


@pytest.mark.parametrize("name", ["CURRENT", "vectors.npy"])
def test_rebuild_repairs_a_damaged_index(world, tmp_path, capsys, name):
    index = copy_index(world["index1"], tmp_path / "index")
    flip_bit(target(index, name))
    proc = run_cli("check", "--index", index)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and name in proc.stderr, proc.stderr
    report = build(world["corpus1"], index, rebuild=True, embedder=TINY_EMBEDDER)
    assert read_current(index) == report.generation != world["gen1"]
    assert answers(index) == world["answers1"]
    assert check(index, capsys)[0] == 0


def _rewrite_current(index: Path, obj: dict) -> None:
    (index / "CURRENT").write_text(json.dumps(obj), encoding="utf-8")


@pytest.mark.parametrize("case", [
    "missing-current", "missing-file", "legacy-current-bad-manifest",
    "legacy-current-incomplete-manifest", "current-names-absent-generation", "index-is-a-file"])
def test_other_damage_is_refused(world, tmp_path, capsys, case):
    index = copy_index(world["index1"], tmp_path / "index")
    gen = world["gen1"]
    manifest = index / gen / "manifest.json"
    if case == "missing-current":
        (index / "CURRENT").unlink()
        name = "CURRENT is missing"
    elif case == "missing-file":
        target(index, "vectors.npy").unlink()
        name = "vectors.npy is missing"
    elif case == "legacy-current-bad-manifest":     # a CURRENT from before it held checksums
        _rewrite_current(index, {"generation": gen})
        truncate(manifest)
        name = "manifest.json is not valid JSON"
    elif case == "legacy-current-incomplete-manifest":
        _rewrite_current(index, {"generation": gen})
        m = json.loads(manifest.read_text(encoding="utf-8"))
        del m["counts"]
        manifest.write_text(json.dumps(m), encoding="utf-8")
        name = "manifest.json is incomplete"
    elif case == "current-names-absent-generation":
        _rewrite_current(index, {"generation": "gen-000099"})
        name = "gen-000099/manifest.json is missing"
    else:
        shutil.rmtree(index)
        index.write_text("not a folder", encoding="utf-8")
        with pytest.raises(RagError, match="is not a folder"):
            load(index)
        assert check(index, capsys)[0] == 2
        return
    assert_refused(index, capsys, name)
