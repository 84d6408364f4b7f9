"""Issue 16, finding 7: an add from the Library tab is indexed (queued while another build
holds the index) or not copied at all; files present but not indexed are listed."""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from conftest import TINY_DOCS_V2
from rag.errors import DiskFull, IndexBusy
from rag.index import writer_lock
from rag.web import adding
from rag.web.live import LiveIndex
from rag.web.service import Service

NEW = "d.txt"


@pytest.fixture()
def svc(tmp_path, tiny_index) -> Service:
    corpus, index = tiny_index
    c, i = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(corpus, c)
    shutil.copytree(index, i, ignore=shutil.ignore_patterns(".lock"))
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / NEW).write_text(TINY_DOCS_V2[NEW], encoding="utf-8")
    s = Service(LiveIndex(i, warm=False), i, c, tmp_path / "work")
    s.upload = upload / NEW
    return s


def indexed(s: Service) -> set[str]:
    return {f for f, _sha, _enc in s.live.get().index.store.files()}


def test_add_waits_for_another_build_then_indexes(svc):
    held, release = threading.Event(), threading.Event()

    def other_build() -> None:                      # as `rag build` in a terminal would
        with writer_lock(svc.index_dir):
            held.set()
            release.wait(20)

    t = threading.Thread(target=other_build)
    t.start()
    held.wait(5)
    log: list[str] = []
    result: dict = {}
    adder = threading.Thread(target=lambda: result.update(
        out=adding.add_and_index(svc, [str(svc.upload)], log.append, wait_s=30, poll_s=0.05)))
    adder.start()
    time.sleep(0.5)
    assert any("排队" in m for m in log), log       # queued, and said so
    assert not (svc.corpus / NEW).exists()          # nothing copied while the other build runs
    release.set()
    t.join(10)
    adder.join(120)
    added, summary = result["out"]
    assert added == [NEW] and NEW in indexed(svc) and "gen-" in summary
    assert svc.pending_files() == []


def test_add_gives_up_without_copying_when_the_other_build_does_not_end(svc):
    with writer_lock(svc.index_dir):
        with pytest.raises(IndexBusy, match="nothing was added"):
            adding.add_and_index(svc, [str(svc.upload)], lambda m: None, wait_s=0.3, poll_s=0.05)
    assert not (svc.corpus / NEW).exists()


def test_a_failed_build_removes_the_copied_files(svc, monkeypatch):
    def full(*a, **k):
        raise DiskFull("disk full while writing store.sqlite; the previous index is intact")

    monkeypatch.setattr(adding, "update_index", full)
    log: list[str] = []
    with pytest.raises(DiskFull):
        adding.add_and_index(svc, [str(svc.upload)], log.append, wait_s=5)
    assert not (svc.corpus / NEW).exists() and any("撤销" in m for m in log)


def test_files_present_but_not_indexed_are_listed_and_removable(svc):
    shutil.copy(svc.upload, svc.corpus / NEW)       # e.g. left by a build that did not finish
    assert svc.pending_files() == [NEW]
    removed = svc.remove_documents([NEW], lambda m: None)
    assert removed == [NEW] and not (svc.corpus / NEW).exists()
