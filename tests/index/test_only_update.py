"""`build(only=[...])` / `rag build --only FILE`: an update told which files changed does not
scan the rest of the corpus, and ends where a full rebuild of the same corpus does."""
from __future__ import annotations

import numpy as np
import pytest

from rag.errors import BadInput
from rag.index import build
from test_index import A, B, B2, C, D, minilm_spec, snapshot, write


def test_named_files_update_and_end_like_a_rebuild(tmp_path):
    corpus, inc, ref = tmp_path / "corpus", tmp_path / "index", tmp_path / "ref"
    corpus.mkdir()
    spec = minilm_spec()
    for name, text in (("a.txt", A), ("b.txt", B), ("c.txt", C)):
        write(corpus, name, text)
    build(corpus, inc, embedder=spec)

    write(corpus, "d.txt", D)
    write(corpus, "b.txt", B2)                     # changed, but not named: not looked at
    r = build(corpus, inc, only=["d.txt"])
    assert r.added == ["d.txt"] and r.changed == [] and r.removed == []
    r = build(corpus, inc, only=["b.txt", "c.txt"])  # c.txt named but unchanged: kept
    assert r.changed == ["b.txt"] and r.added == [] and r.removed == [] and r.embedded > 0
    (corpus / "a.txt").unlink()
    r = build(corpus, inc, only=["a.txt"])
    assert r.removed == ["a.txt"] and r.embedded == 0

    build(corpus, ref, embedder=spec, rebuild=True)
    got, want = snapshot(inc), snapshot(ref)
    for key in ("ids", "texts", "sources", "files", "file_texts", "words", "bm25_docs"):
        assert got[key] == want[key], key
    assert np.allclose(got["vectors"], want["vectors"], atol=1e-6)
    for q in want["bm25"]:
        assert np.allclose(got["bm25"][q], want["bm25"][q], atol=1e-5)


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/hosts.txt", ".hidden.txt", "metadata.csv", "x.exe"])
def test_names_outside_the_corpus_are_refused(tmp_path, name):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write(corpus, "a.txt", A)
    build(corpus, tmp_path / "index", embedder=minilm_spec())
    with pytest.raises(BadInput, match="--only"):
        build(corpus, tmp_path / "index", only=[name])
