"""Keyword tokens for BM25: jieba for Chinese, words and numbers for the rest.

Text is normalised first (NFKC folds full-width `１１０` to `110`; Traditional characters
are mapped to Simplified; case is folded) so a query matches however it was typed.
Quoted terms of the corpus (“两个确立”, “八个不发生”) become jieba words, so a quoted
phrase is one strong token as well as its parts. The word list is saved with the index:
queries must be cut exactly as the passages were.
"""
from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np

from rag import settings as settings_mod

_QUOTED = re.compile(r"[“「『\"]([^”」』\"\n]{2,12})[”」』\"]")
_PUNCT_ONLY = re.compile(r"^[\W_]+$")
STOPWORDS = frozenset(
    "的 了 和 与 及 或 是 在 为 对 把 被 将 从 以 于 等 也 都 而 并 其 之 这 那 有 中 上 下 个 "
    "吗 呢 吧 啊 什么 哪些 哪个 怎么 怎样 如何 多少 几 是否 谁 哪 哪里 为什么 "
    "a an the of to in on for and or is are was were be by with as at from that this what "
    "which who how why when where does do did".split())


@lru_cache(maxsize=1)
def _t2s():
    try:
        import opencc

        return opencc.OpenCC("t2s")
    except Exception:  # OpenCC missing: Traditional text still searches by meaning
        return None


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    conv = _t2s()
    return conv.convert(text) if conv else text


def quoted_terms(texts: Iterable[str]) -> list[str]:
    """Short quoted phrases of the corpus, to be kept whole by the tokenizer."""
    terms = set()
    for t in texts:
        for m in _QUOTED.finditer(t):
            terms.add(normalize(m.group(1)).strip())
    return sorted(x for x in terms if x and not _PUNCT_ONLY.match(x))


def _accelerate(jieba_tokenizer) -> bool:
    from rag.index.sparse.fastcut import accelerate

    return accelerate(jieba_tokenizer)


@lru_cache(maxsize=1)
def _base_dictionary() -> tuple[dict, int]:
    """jieba's word frequencies (FREQ, total). jieba keeps them as a marshal file that took
    1.45 s to load here (~500k small objects), the largest part of opening a 1M-chunk index
    and of every update; the same dict rebuilt from a word list and a frequency array takes
    0.45 s. That copy is made once per jieba dictionary in the models folder."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    dict_file = Path(jieba.__file__).with_name("dict.txt")
    try:
        st = dict_file.stat()
        key = f"{getattr(jieba, '__version__', '0')}-{st.st_size}-{st.st_mtime_ns}"
    except OSError:
        key = None
    folder = settings_mod.get().models_dir / "jieba-dict"
    if key:
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            if meta.get("key") == key:
                words = (folder / "words.txt").read_text(encoding="utf-8").split("\n")
                freqs = np.load(folder / "freqs.npy").tolist()
                if len(words) == len(freqs) == meta.get("n"):
                    return dict(zip(words, freqs)), int(meta["total"])
        except (OSError, ValueError):
            pass
    t = jieba.Tokenizer()
    t.initialize()
    if key:
        _save_dictionary(folder, key, t.FREQ, t.total)
    return t.FREQ, t.total


def _save_dictionary(folder: Path, key: str, freq: dict, total: int) -> None:
    """Best effort (a read-only cache folder only costs the slower load)."""
    if any("\n" in w for w in freq):
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-{os.getpid()}"
        tmp.mkdir(exist_ok=True)
        (tmp / "words.txt").write_text("\n".join(freq), encoding="utf-8")
        np.save(tmp / "freqs.npy", np.fromiter(freq.values(), dtype=np.int64, count=len(freq)))
        (tmp / "meta.json").write_text(json.dumps({"key": key, "n": len(freq), "total": int(total)}), encoding="utf-8")
        for name in ("words.txt", "freqs.npy", "meta.json"):     # meta last: it validates the rest
            os.replace(tmp / name, folder / name)
        tmp.rmdir()
    except OSError:
        pass


class Tokenizer:
    """jieba (search mode) with the corpus's quoted terms as extra words."""

    def __init__(self, user_words: Iterable[str] = (), fast: bool = False) -> None:
        """`fast`: jieba's route and HMM in Rust where installed (rag.index.sparse.fastcut:
        the same tokens); builds ask for it, queries do not need it."""
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._jieba = jieba.Tokenizer()
        # jieba's own initialize() unmarshals its dictionary (~0.8 s) on every index load;
        # a private copy of a dictionary loaded once per process gives the same tokenizer
        freq, total = _base_dictionary()
        self._jieba.FREQ, self._jieba.total, self._jieba.initialized = dict(freq), total, True
        self.user_words = sorted(set(user_words))
        for w in self.user_words:
            self._jieba.add_word(w, freq=2000)
        # jieba.add_word also grows the total frequency, which shifts the cost of every path
        # through every sentence: a quoted term anywhere in the corpus could then change how
        # unrelated text is cut. With the total kept, a text's tokens depend only on the
        # words that occur in it, so an update re-cuts just the chunks containing words that
        # came or went (rag.index.builder) and still equals a full rebuild.
        self._jieba.total = total
        self.fast = fast and _accelerate(self._jieba)
        self._keep: dict[str, str] = {}      # token -> itself stripped, or "" when dropped

    def __call__(self, text: str) -> list[str]:
        return self.cut_normalized(normalize(text))

    def cut_normalized(self, text: str) -> list[str]:
        """Tokens of a text already normalize()d (builds normalise each chunk once for both
        the stored text and the tokens)."""
        raw = self._jieba.search_list(text) if self.fast else self._jieba.cut_for_search(text)
        keep = self._keep
        out = []
        for tok in raw:
            k = keep.get(tok)
            if k is None:               # a token's fate is remembered: tokens repeat a lot
                k = tok.strip()
                if not k or k in STOPWORDS or _PUNCT_ONLY.match(k):
                    k = ""
                if len(keep) < 200_000:
                    keep[tok] = k
            if k:
                out.append(k)
        return out

    def query_terms(self, text: str) -> list[str]:
        """Distinct tokens of a query, in order (a repeated word is not a stronger query)."""
        return list(dict.fromkeys(self(text)))
