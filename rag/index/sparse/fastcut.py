"""jieba with its two hot loops in Rust: the best route through the word graph and the HMM
for unknown words (the compiled kernels of PyPI `jieba-next`), giving jieba's tokens.

Why: jieba is pure Python and cutting was ~75% of a build's worker time (py-spy, 300k
chunks of bench_scale): get_DAG + calc ~55%, the HMM ~17%. Why not jieba-next's own
Tokenizer or jieba_fast_dat: on the seeds + CMRC paragraphs they cut 49 and 504 of 1,188
paragraphs differently from jieba (rjieba, a separate implementation, was not compared),
and an index must cut passages as its queries are cut. Here only the kernels are borrowed:
  - the route is jieba's dynamic programme over the same FREQ dict and total;
  - the HMM goes to Rust only for a block whose every character has an emission
    probability in every state: for unseen characters jieba's viterbi and the Rust one
    break ties of MIN_FLOAT sums differently (73 of 38,763 HMM blocks of seeds + CMRC, all
    with an unseen character); those blocks keep jieba's Python viterbi.
tests/index/test_fastcut.py proves the tokens equal jieba's on the seeds and CMRC.
Used where volume matters (building); queries keep plain jieba (no second copy of the
dictionary in a query process). Without `jieba-next` installed builds fall back to jieba.
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _kernels():
    """(rust module, set of characters the HMM has emissions for in every state) or None."""
    try:
        from jieba_next import jieba_next_rust as rust
    except Exception:          # not installed, or no wheel for this platform: plain jieba
        return None
    from jieba.finalseg import emit_P

    seen = set.intersection(*(set(emit_P[s]) for s in "BMES"))
    return rust, frozenset(seen)


def available() -> bool:
    return _kernels() is not None


def _hmm_cut(block: str):
    """jieba.finalseg.cut of a run of characters, the Viterbi path in Rust when safe."""
    from jieba import finalseg

    rust, seen = _kernels()
    for blk in finalseg.re_han.split(block):
        if not blk:
            continue
        if not finalseg.re_han.match(blk):
            yield from (x for x in finalseg.re_skip.split(blk) if x)
            continue
        if all(c in seen for c in blk):
            _, path = rust._viterbi(blk, "BMES", finalseg.start_P, finalseg.trans_P, finalseg.emit_P)
        else:
            _, path = finalseg.viterbi(blk, "BMES", finalseg.start_P, finalseg.trans_P, finalseg.emit_P)
        begin = nexti = 0
        for i, pos in enumerate(path):
            if pos == "B":
                begin = i
            elif pos == "E":
                word, nexti = blk[begin:i + 1], i + 1
                if word in finalseg.Force_Split_Words:
                    yield from word
                else:
                    yield word
            elif pos == "S":
                yield blk[i]
                nexti = i + 1
        if nexti < len(blk):
            yield blk[nexti:]


def accelerate(tok) -> bool:
    """Give a jieba.Tokenizer (dictionary final: call after add_word) `tok.search_list(text)`:
    its cut_for_search as one list, with the route and HMM in Rust (jieba's four layers of
    generators per token cost as much as the route itself); False (tokenizer unchanged)
    where jieba-next is not installed."""
    k = _kernels()
    if k is None:
        return False
    import jieba

    prefix = k[0].PrefixDict(tok.FREQ, float(tok.total))
    freq = tok.FREQ
    han, skip = jieba.re_han_default, jieba.re_skip_default

    def cut_block(sentence: str, out: list) -> None:
        # jieba.Tokenizer.__cut_DAG with the route from Rust
        route = prefix.get_dag_and_calc(sentence)
        x, buf, n = 0, "", len(sentence)
        while x < n:
            y = route[x] + 1
            if y - x == 1:
                buf += sentence[x]
            else:
                if buf:
                    _flush(buf, freq, out)
                    buf = ""
                out.append(sentence[x:y])
            x = y
        if buf:
            _flush(buf, freq, out)

    def search_list(text: str) -> list[str]:
        # jieba.Tokenizer.cut (HMM) then cut_for_search's 2- and 3-grams, as one loop
        words: list[str] = []
        for blk in han.split(text):
            if not blk:
                continue
            if han.match(blk):
                cut_block(blk, words)
            else:
                for x in skip.split(blk):
                    if skip.match(x):
                        words.append(x)
                    else:
                        words.extend(x)
        out: list[str] = []
        for w in words:
            n = len(w)
            if n > 2:
                for i in range(n - 1):
                    if freq.get(w[i:i + 2]):
                        out.append(w[i:i + 2])
                if n > 3:
                    for i in range(n - 2):
                        if freq.get(w[i:i + 3]):
                            out.append(w[i:i + 3])
            out.append(w)
        return out

    tok.search_list = search_list
    return True


def _flush(buf: str, freq: dict, out: list) -> None:
    if len(buf) == 1:
        out.append(buf)
    elif not freq.get(buf):
        out.extend(_hmm_cut(buf))
    else:
        out.extend(buf)
