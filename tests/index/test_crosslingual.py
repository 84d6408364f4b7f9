"""rag.index.sparse.crosslingual: English questions become Chinese keyword senses."""
from __future__ import annotations

import pytest

from rag.index.sparse.crosslingual import is_english, senses, translate


@pytest.mark.parametrize("text,expected", [
    ("What did Sichuan police do?", True),
    ("四川公安开展了哪些行动", False),
    ("AI 赋能公安工作的主要举措", False),     # a few Latin letters in a Chinese question
    ("ok", False),
])
def test_is_english(text, expected):
    assert is_english(text) is expected


def test_senses_are_chinese_and_follow_inflections():
    police = senses("police")
    assert police and all(any("\u4e00" <= c <= "\u9fff" for c in s) for s in police)
    assert any("警察" in s or "公安" in s for s in police)
    assert senses("wrote") == senses("write")            # the dictionary's base form
    assert senses("frauds") == senses("fraud")


def test_translate_drops_stopwords_and_unknown_words():
    groups = translate("What is the police doing about telecom fraud xqzzv?")
    flat = [s for g in groups for s in g]
    assert any("公安" in s for s in flat) and any("欺诈" in s for s in flat) and "电信" in flat
    assert len(groups) == 4                    # police, doing, telecom, fraud: what/is/the/about
    assert not any("xqzzv" in s for s in flat)  # dropped, xqzzv unknown
