"""rag.web.live: the app's index snapshot follows builds (CURRENT switches) without stopping
answering, keeps serving the old generation when a new one cannot be loaded."""
from __future__ import annotations

import json
import threading

import pytest

from rag.errors import RagError
from rag.index import build
from rag.web.live import LiveIndex

DOC_A = "甲文\n\n作者甲\n\n青藏高原的牦牛养殖合作社推行统一防疫，牧民收入明显增加。\n\n合作社还建立了冷链仓储和电商销售渠道。\n"
DOC_B = "乙文\n\n作者乙\n\n东海渔场的伏季休渔制度保护了带鱼资源，渔政部门开展海上巡查。\n"


@pytest.fixture()
def corpus(tmp_path):
    c = tmp_path / "corpus"
    c.mkdir()
    (c / "a.txt").write_text(DOC_A, encoding="utf-8")
    return c


def built_live(corpus, tmp_path) -> tuple:
    """(index folder, LiveIndex on it, the log lines it writes) for a fresh build of `corpus`."""
    index = tmp_path / "index"
    build(corpus, index)
    logs: list[str] = []
    return index, LiveIndex(index, log=logs.append), logs


def test_no_index_is_a_clear_error(tmp_path):
    with pytest.raises(RagError, match="no index"):
        LiveIndex(tmp_path / "none").get()


def test_follows_new_generations_and_keeps_answering(corpus, tmp_path):
    index, live, logs = built_live(corpus, tmp_path)
    s1 = live.get()
    assert s1.generation == "gen-000001" and live.get() is s1          # cheap when unchanged
    assert s1.citer is None or hasattr(s1.citer, "lookup")

    errors: list[str] = []
    answered = [0]
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                res = live.get().searcher.search("牦牛养殖合作社", k=2)
                assert res and res[0].source == "a.txt"
                answered[0] += 1
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        (corpus / "b.txt").write_text(DOC_B, encoding="utf-8")
        build(corpus, index)
        s2 = live.get(wait=True)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert errors == [] and answered[0] > 0
    assert s2.generation == "gen-000002" and s2 is not s1
    assert s2.searcher.search("伏季休渔 带鱼", k=1)[0].source == "b.txt"
    # the old snapshot is immutable and still answers from its own generation
    assert all(r.source == "a.txt" for r in s1.searcher.search("伏季休渔 带鱼", k=3))
    assert any("switched from gen-000001 to gen-000002" in m for m in logs)


def test_keeps_serving_when_a_generation_cannot_be_loaded(corpus, tmp_path):
    index, live, logs = built_live(corpus, tmp_path)
    s1 = live.get()
    current = (index / "CURRENT").read_bytes()
    (index / "CURRENT").write_text(json.dumps({"generation": "gen-000099"}), encoding="utf-8")
    assert live.get() is s1                                   # a generation that is not there
    (index / "CURRENT").write_text("garbage", encoding="utf-8")
    assert live.get() is s1                                   # a damaged CURRENT
    (index / "CURRENT").write_bytes(current)
    assert live.reload() is s1
    assert live.get().searcher.search("牦牛", k=1)
