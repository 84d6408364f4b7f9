"""rag.index.sparse.fastcut: the Rust route and HMM give exactly jieba's tokens, so an index
built with them is searched by queries cut with plain jieba."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.index.sparse import fastcut
from rag.index.sparse.tokenizer import Tokenizer, normalize, quoted_terms

pytest.importorskip("jieba_next", reason="jieba-next not installed (make setup installs it): builds use plain jieba")

REPO = Path(__file__).resolve().parents[2]
CMRC = REPO.parent / "shared" / "eval" / "cmrc" / "corpus"


def _paragraphs() -> list[str]:
    files = sorted((REPO / "seeds").glob("*.txt")) + (sorted(CMRC.glob("*.txt")) if CMRC.is_dir() else [])
    out = []
    for f in files:
        out += [p for p in re.split(r"\n\s*\n", f.read_text(encoding="utf-8")) if p.strip()]
    return out


def test_tokens_equal_jieba_on_seeds_and_cmrc():
    paras = _paragraphs()
    words = quoted_terms(paras)
    plain, fast = Tokenizer(words), Tokenizer(words, fast=True)
    assert fast.fast and not plain.fast
    diff = [p[:40] for p in paras if plain.cut_normalized(normalize(p)) != fast.cut_normalized(normalize(p))]
    assert len(paras) >= 50 and diff == []


def test_unseen_characters_keep_jiebas_hmm():
    # characters without HMM emissions (rare, e.g. 貍 鯙 梂) are where the Rust Viterbi
    # breaks ties differently: the fallback must give jieba's cut
    plain, fast = Tokenizer(), Tokenizer(fast=True)
    for text in ("挖像袋貍的洞穴", "异蝮鯙科的鱼类", "梂昂郡的村庄", "abc 123 公安机关 xyz"):
        assert fast(text) == plain(text)


def test_user_words_added_before_the_route_is_compiled():
    fast = Tokenizer(["八个不发生"], fast=True)
    assert "八个不发生" in fast("确保八个不发生")
    assert fastcut.available()
