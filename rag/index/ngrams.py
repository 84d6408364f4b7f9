"""Normalized views of whole files, character-bigram postings over them, and alignment.

Citation lookup works on the decoded file texts, not on chunks, so a quote may run across
chunk, paragraph and page-break boundaries. Each file gets a *normalized view*:

1. every character is NFKC-folded and lower-cased (full-width letters, digits and
   compatibility forms become their plain forms), and only letters and digits (Unicode
   categories L* and N*) are kept: punctuation, quote marks, symbols, whitespace, page
   breaks and markdown markers all disappear;
2. the result is converted Traditional -> Simplified with OpenCC `t2s` (phrase-aware over
   the whole text when that keeps the length, as it does in practice, else per character).

`origin[i]` is the raw offset (in the file) of normalized character `i`, so a span of the
normalized view maps back to exact characters of the original file. A pasted quote goes
through the same function (`normalize`).

`NgramIndex` concatenates the normalized views of all files, turns characters into dense
ids, and keeps postings of every character bigram as one sorted array (CSR layout:
`keys` unique bigrams, `starts` offsets into `postings`). Finding where a quote may come
from is then a handful of binary searches plus counting bigram hits per diagonal
(text position minus quote position), never a scan of the corpus.
"""
from __future__ import annotations

import bisect
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import numpy as np

from rag.index.rowfile import RowFile

_KEEP = ("L", "N")


@lru_cache(maxsize=1)
def _opencc():
    import opencc

    return opencc.OpenCC("t2s")


def _keep(ch: str) -> bool:
    return unicodedata.category(ch)[0] in _KEEP


def _fold(ch: str) -> str:
    """NFKC, lower case, letters and digits only (step 1 and 3 for one character)."""
    return "".join(c for c in unicodedata.normalize("NFKC", ch).lower() if _keep(c))


def _codes(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _text(codes: np.ndarray) -> str:
    return codes.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


# Per-code-point lookup tables, filled lazily for the characters seen so far: the length
# of a character's fold (-1: not computed), its single folded code point, the folds longer
# than one character, and whether a code point is a letter or digit (-1: not computed).
_NCODES = 0x110000
_lut_lock = threading.Lock()
_fold_len = np.full(_NCODES, -1, dtype=np.int8)
_fold_code = np.zeros(_NCODES, dtype=np.uint32)
_fold_multi: dict[int, np.ndarray] = {}
_keep_lut = np.full(_NCODES, -1, dtype=np.int8)


def _fill_fold(codes: np.ndarray) -> None:
    new = codes[_fold_len[codes] < 0]
    if len(new) == 0:
        return
    with _lut_lock:
        for c in np.unique(new).tolist():
            f = _fold(chr(c))
            if len(f) > 1:
                _fold_multi[c] = _codes(f).copy()
            _fold_code[c] = ord(f) if len(f) == 1 else 0
            _fold_len[c] = min(len(f), 127)


def _keep_mask(codes: np.ndarray) -> np.ndarray:
    new = codes[_keep_lut[codes] < 0]
    if len(new):
        with _lut_lock:
            for c in np.unique(new).tolist():
                _keep_lut[c] = _keep(chr(c))
    return _keep_lut[codes] == 1


def normalize_codes(raw: str) -> tuple[np.ndarray, np.ndarray]:
    """The normalized view of `raw` as code points (uint32) and, for each, the raw offset
    it came from (int64)."""
    if not raw:
        return np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.int64)
    codes = _codes(raw)
    _fill_fold(codes)
    lens = _fold_len[codes].astype(np.int64)
    origin = np.repeat(np.arange(len(codes), dtype=np.int64), lens)
    folded = np.repeat(_fold_code[codes], lens)
    multi = np.flatnonzero(lens > 1)
    if len(multi):
        offs = np.cumsum(lens) - lens
        for i in multi.tolist():
            folded[offs[i]:offs[i] + lens[i]] = _fold_multi[int(codes[i])][:lens[i]]
    text = _text(folded)
    simp = _opencc().convert(text)
    if len(simp) != len(text):      # phrase conversion changed the length: per character
        table = {}
        for ch in set(text):
            out = _opencc().convert(ch)
            table[ord(ch)] = out if len(out) == 1 else ch
        simp = text.translate(table)
    out = _codes(simp)
    keep = _keep_mask(out)
    if not keep.all():
        out, origin = out[keep], origin[keep]
    return out.copy(), origin


def normalize_map(raw: str) -> tuple[str, np.ndarray]:
    """The normalized view of `raw` and, for each of its characters, the raw offset it
    came from (int64 array)."""
    codes, origin = normalize_codes(raw)
    return _text(codes), origin


def normalize(text: str) -> str:
    """The normalized form of a quote (same function as the files' views)."""
    return normalize_map(text)[0]


# ----------------------------------------------------------------------------- postings

@dataclass
class Candidate:
    file: int        # file number in the index
    lo: int          # global normalized window [lo, hi) to align the quote in
    hi: int
    hits: int        # bigram hits along the diagonal band


_ARRAYS = ("origin", "ids", "keys", "starts", "postings", "vocab", "file_starts")
_PREAD = ("origin", "ids", "postings")
CITE_DIR = "cite"
FILES = tuple(f"{CITE_DIR}/{a}.npy" for a in _ARRAYS) + (f"{CITE_DIR}/sources.txt",)


class NgramIndex:
    """Bigram postings over the concatenated normalized views of many files.

    Built once when a segment is written (`save`) and memory-mapped when it is opened
    (`open`): the first lookup after a start costs what the next one does. `live`, if set,
    marks the files of the segment still in the commit (an updated or deleted file's old
    text stays in its segment until a merge; its regions are never candidates)."""

    live: np.ndarray | None = None

    def save(self, folder) -> None:
        from pathlib import Path

        d = Path(folder) / CITE_DIR
        d.mkdir(parents=True, exist_ok=True)
        for a in _ARRAYS:
            np.save(d / f"{a}.npy", getattr(self, a))
        (d / "sources.txt").write_text("\n".join(self.sources), encoding="utf-8")

    @classmethod
    def open(cls, folder, live: np.ndarray | None = None) -> "NgramIndex":
        from pathlib import Path

        d = Path(folder) / CITE_DIR
        self = cls.__new__(cls)
        for a in _ARRAYS:
            # the large arrays are read by slices with pread (rag.index.rowfile): through
            # the memory map, 60 lookups left 570 MB of them resident at 1M chunks
            setattr(self, a, RowFile(d / f"{a}.npy") if a in _PREAD else np.load(d / f"{a}.npy", mmap_mode="r"))
        text = (d / "sources.txt").read_text(encoding="utf-8")
        self.sources = text.split("\n") if text else []
        self.file_of_source = {s: i for i, s in enumerate(self.sources)}
        self._starts_list = np.asarray(self.file_starts).tolist()
        self.n = int(self._starts_list[-1])
        self.V = len(self.vocab)
        if len(self.sources) + 1 != len(self._starts_list):
            raise ValueError("cite postings disagree with their sources")
        self.live = None if live is None or live.all() else live
        return self

    def __init__(self, files: Iterable[tuple[str, str]]):
        sources: list[str] = []
        codes_l: list[np.ndarray] = []
        origins: list[np.ndarray] = []
        starts = [0]
        for source, raw in files:
            codes, origin = normalize_codes(raw)
            sources.append(source)
            codes_l.append(codes)
            origins.append(origin.astype(np.int32) if len(raw) < 2**31 else origin)
            starts.append(starts[-1] + len(codes))
        self.sources = sources
        self.file_of_source = {s: i for i, s in enumerate(sources)}
        self.file_starts = np.asarray(starts, dtype=np.int64)
        self._starts_list = starts
        self.n = n = int(starts[-1])
        self.origin = np.concatenate(origins) if origins else np.zeros(0, dtype=np.int32)
        codes = np.concatenate(codes_l) if codes_l else np.zeros(0, dtype=np.uint32)
        del codes_l, origins
        present = np.zeros(_NCODES, dtype=bool)
        present[codes] = True
        self.vocab = np.flatnonzero(present).astype(np.uint32)
        v = self.V = len(self.vocab)
        lut = np.full(_NCODES, -1, dtype=np.int32)
        lut[self.vocab] = np.arange(v, dtype=np.int32)
        self.ids = lut[codes].astype(np.uint16 if v < 2**16 else np.int32)
        del codes, lut, present
        sentinel = v * v                                  # above every real bigram key
        keys = self.ids[:-1].astype(np.int64) * v + self.ids[1:]
        cut = self.file_starts[1:-1] - 1                  # no bigram across two files
        keys[cut[(cut >= 0) & (cut < len(keys))]] = sentinel
        if sentinel < 2**32 and n < 2**31:
            # sort (key, position) pairs packed in one int64: much faster than argsort
            keys <<= 31
            keys |= np.arange(len(keys), dtype=np.int64)
            keys.sort()
            order = (keys & (2**31 - 1)).astype(np.int32)
            keys >>= 31
            skeys = keys
        else:
            order = np.argsort(keys, kind="stable")
            skeys = keys[order]
        nreal = int(np.searchsorted(skeys, sentinel))
        skeys, order = skeys[:nreal], order[:nreal]
        bounds = np.flatnonzero(skeys[1:] != skeys[:-1]) + 1
        self.starts = np.concatenate([[0], bounds, [nreal]]).astype(np.int64) if nreal \
            else np.zeros(1, dtype=np.int64)
        self.keys = skeys[self.starts[:-1]].copy()
        self.postings = order if n < 2**31 else order.astype(np.int64)
        del keys, skeys

    # ---- helpers
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.origin, self.ids, self.keys, self.starts,
                                      self.postings, self.vocab, self.file_starts))

    def file_at(self, pos: int) -> int:
        return bisect.bisect_right(self._starts_list, pos) - 1

    def quote_ids(self, qnorm: str) -> np.ndarray:
        """Dense ids of a normalized quote; -1 for characters absent from the corpus."""
        qc = _codes(qnorm).astype(np.uint32)
        i = np.searchsorted(self.vocab, qc)
        i = np.minimum(i, max(len(self.vocab) - 1, 0))
        ok = (self.vocab[i] == qc) if len(self.vocab) else np.zeros(len(qc), dtype=bool)
        return np.where(ok, i, -1).astype(np.int64)

    def text(self, lo: int, hi: int) -> str:
        """The normalized text of the global span [lo, hi)."""
        return _text(self.vocab[self.ids[lo:hi]])

    def raw_span(self, lo: int, hi: int) -> tuple[int, int, int]:
        """(file, raw start, raw end) of the global normalized span [lo, hi)."""
        f = self.file_at(lo)
        return f, int(self.origin[lo]), int(self.origin[hi - 1]) + 1

    # ---- candidate regions
    def candidates(self, qids: np.ndarray, max_candidates: int = 50, hit_budget: int = 100_000,
                   min_bigrams: int = 3, max_broken: int | None = None,
                   relative: float = 0.4) -> tuple[list[Candidate], int]:
        """Regions where the quote's bigrams line up on one diagonal, best first, and the
        number of quote bigrams used. Only the rarest bigrams are used once their postings
        exceed `hit_budget` (every true occurrence is hit by every unbroken bigram, so the
        rare ones locate it as well as all would). `max_broken`: at most this many of the
        quote's bigrams can be broken by the edits a match may have; bigrams absent from
        the corpus count as broken, and a region with fewer hits than the used bigrams
        minus the remaining allowance cannot be a match and is not returned."""
        m = len(qids)
        if m < 2 or len(self.keys) == 0:
            return [], 0
        a, b = qids[:-1], qids[1:]
        valid = (a >= 0) & (b >= 0)
        j = np.nonzero(valid)[0]
        if len(j) == 0:
            return [], 0
        qk = a[j] * self.V + b[j]
        pos = np.searchsorted(self.keys, qk)
        pos = np.minimum(pos, len(self.keys) - 1)
        found = self.keys[pos] == qk
        j, pos = j[found], pos[found]
        # bigrams of the quote absent from the corpus are broken at any true occurrence
        broken_left = None if max_broken is None else max_broken - (m - 1 - len(j))
        if len(j) == 0 or (broken_left is not None and broken_left < 0):
            return [], 0
        df = self.starts[pos + 1] - self.starts[pos]
        order = np.argsort(df, kind="stable")
        total = np.cumsum(df[order])
        take = max(int(np.searchsorted(total, hit_budget, side="right")), min(min_bigrams, len(order)))
        # enough bigrams that a true occurrence must hit at least `min_bigrams` of them, as
        # long as that stays within ten budgets (else weaker pruning, same ranking)
        need = min_bigrams + (broken_left if broken_left is not None else 0)
        take = max(take, min(need, int(np.searchsorted(total, 10 * hit_budget, side="right"))))
        sel = order[:take]
        used = len(sel)
        min_hits = max(1, used - broken_left) if broken_left is not None else 1
        diags = [self.postings[self.starts[p]:self.starts[p + 1]].astype(np.int64) - jj
                 for p, jj in zip(pos[sel], j[sel])]
        d = np.concatenate(diags)
        if self.live is not None:          # hits in files no longer in the commit
            at = d + np.concatenate([np.full(len(x), jj, dtype=np.int64) for x, jj in zip(diags, j[sel])])
            d = d[self.live[np.searchsorted(self.file_starts, at, side="right") - 1]]
            if len(d) == 0:
                return [], used
        # band width: each indel shifts the diagonal by one, and a match has fewer than m/3
        # edits, so its hits lie within two neighbouring bands
        band = 2 + m // 3
        d //= band
        d.sort()
        edges = np.flatnonzero(d[1:] != d[:-1]) + 1
        bins = d[np.concatenate([[0], edges])]
        counts = np.diff(np.concatenate([[0], edges, [len(d)]]))
        # a peak straddling two bins: score each bin together with its right neighbour
        nxt = np.searchsorted(bins, bins + 1)
        nxt_ok = nxt < len(bins)
        nxt_ok[nxt_ok] = bins[nxt[nxt_ok]] == bins[nxt_ok] + 1
        score = counts + np.where(nxt_ok, counts[np.minimum(nxt, len(bins) - 1)], 0)
        top = np.argsort(-score, kind="stable")[: max_candidates * 8]
        # a region with less than `relative` of the best region's hits is not another
        # occurrence (each occurrence within the allowed edits keeps most of its bigrams)
        if len(top):
            min_hits = max(min_hits, int(np.ceil(relative * score[top[0]])))
        out: list[Candidate] = []
        blocked: set[int] = set()
        sep = max(2, (m + band) // band)     # peaks closer than one quote length are one peak
        pad = 4 + m // 3
        for t in top:
            if score[t] < min_hits:
                break
            bn = int(bins[t])
            if bn in blocked:
                continue
            blocked.update(range(bn - sep + 1, bn + sep))
            dlo, dhi = bn * band, (bn + 2) * band
            center = min(max(dlo + m // 2, 0), self.n - 1)
            f = self.file_at(center)
            flo, fhi = int(self.file_starts[f]), int(self.file_starts[f + 1])
            lo, hi = max(flo, dlo - pad), min(fhi, dhi + m + pad)
            if hi > lo:
                out.append(Candidate(f, lo, hi, int(score[t])))
            if len(out) >= max_candidates:
                break
        return out, used


# ---------------------------------------------------------------------------- alignment

def _last_row(q: np.ndarray, t: np.ndarray, free_start: bool) -> np.ndarray:
    """Last row of the edit-distance matrix of `q` (fully aligned) against `t`: cell j is
    the cheapest alignment of all of q to t[s:j], with s free (`free_start`) or 0.

    Myers' bit-parallel algorithm (Hyyro's formulation) with Python integers as bit
    vectors of any length: one pass over `t`, about fifteen integer operations per text
    character whatever the length of the quote."""
    m, n = len(q), len(t)
    row = np.empty(n + 1, dtype=np.int64)
    row[0] = m
    if m == 0:
        row[:] = 0 if free_start else np.arange(n + 1)
        return row
    peq: dict[int, int] = {}
    for i, c in enumerate(q.tolist()):
        peq[c] = peq.get(c, 0) | (1 << i)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    carry = 0 if free_start else 1
    out = [0] * n
    for j, c in enumerate(t.tolist()):
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) & mask) ^ pv) | eq
        ph = mv | (mask ^ (xh | pv))
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | carry) & mask
        mh = (mh << 1) & mask
        pv = mh | (mask ^ (xv | ph))
        mv = ph & xv
        out[j] = score
    row[1:] = out
    return row


def _last_row_dp(q: np.ndarray, t: np.ndarray, free_start: bool) -> np.ndarray:
    """The same row by plain dynamic programming (one numpy pass per quote character);
    kept as the reference the tests compare `_last_row` with."""
    n = len(t)
    ar = np.arange(n + 1, dtype=np.int64)
    prev = np.zeros(n + 1, dtype=np.int64) if free_start else ar.copy()
    for i in range(1, len(q) + 1):
        e = np.empty(n + 1, dtype=np.int64)
        e[0] = i
        np.minimum(prev[:-1] + (t != q[i - 1]), prev[1:] + 1, out=e[1:])
        prev = np.minimum.accumulate(e - ar) + ar
    return prev


def _pick(row: np.ndarray, want: int) -> int:
    """Among the cells of minimal cost, the one nearest `want` (ties: the larger)."""
    best = row.min()
    cand = np.nonzero(row == best)[0]
    return int(cand[np.lexsort((-cand, np.abs(cand - want)))][0])


def align(q: np.ndarray, t: np.ndarray, expect_start: int) -> tuple[int, int, int]:
    """Best infix alignment of the whole of `q` inside `t`: (start, end, edit distance).

    The end is the cheapest end position (nearest the expected end among ties); the start
    is then the cheapest start for that end (the span length nearest len(q) among ties).
    """
    m = len(q)
    row = _last_row(q, t, free_start=True)
    end = _pick(row, expect_start + m)
    back = _last_row(q[::-1], t[:end][::-1], free_start=False)
    length = _pick(back, m)
    return end - length, end, int(back[length])


# ------------------------------------------------------------------------ many segments

class _CodeSlices:
    """`ids[lo:hi]` of a MultiNgram: code points of a span inside one part."""

    def __init__(self, multi: "MultiNgram") -> None:
        self._m = multi

    def __getitem__(self, sl: slice) -> np.ndarray:
        k = self._m.part_at(sl.start)
        p, base = self._m.parts[k], self._m.bases[k]
        return p.vocab[p.ids[sl.start - base:sl.stop - base]].astype(np.int64)


class MultiNgram:
    """The postings of several segments as one NgramIndex for `rag.cite.citer.locate`:
    positions are global (each part's offset by the sizes before it) and ids are Unicode
    code points, the same in every part. Candidates are gathered from each part and ranked
    together, with the `relative` cut applied against the best region of all parts, as one
    index over the same files would."""

    def __init__(self, parts: list[NgramIndex]) -> None:
        self.parts = parts
        self.bases = np.concatenate([[0], np.cumsum([p.n for p in parts])]).astype(np.int64)
        self.fbases = np.concatenate([[0], np.cumsum([len(p.sources) for p in parts])]).astype(np.int64)
        self.sources = [s for p in parts for s in p.sources]
        self.n = int(self.bases[-1])
        self.ids = _CodeSlices(self)

    def part_at(self, pos: int) -> int:
        return int(np.searchsorted(self.bases, pos, side="right") - 1)

    def quote_ids(self, qnorm: str) -> np.ndarray:
        return _codes(qnorm).astype(np.int64)

    def text(self, lo: int, hi: int) -> str:
        k = self.part_at(lo)
        return self.parts[k].text(lo - int(self.bases[k]), hi - int(self.bases[k]))

    def raw_span(self, lo: int, hi: int) -> tuple[int, int, int]:
        k = self.part_at(lo)
        f, a, b = self.parts[k].raw_span(lo - int(self.bases[k]), hi - int(self.bases[k]))
        return f + int(self.fbases[k]), a, b

    def candidates(self, qids: np.ndarray, max_candidates: int = 50, relative: float = 0.4,
                   **kw) -> tuple[list[Candidate], int]:
        qnorm = _text(qids.astype(np.uint32))
        found: list[Candidate] = []
        used = 0
        for k, p in enumerate(self.parts):
            cands, u = p.candidates(p.quote_ids(qnorm), max_candidates=max_candidates,
                                    relative=relative, **kw)
            used = max(used, u)
            base, fb = int(self.bases[k]), int(self.fbases[k])
            found += [Candidate(c.file + fb, c.lo + base, c.hi + base, c.hits) for c in cands]
        if not found:
            return [], used
        best = max(c.hits for c in found)
        found = [c for c in found if c.hits >= np.ceil(relative * best)]
        found.sort(key=lambda c: -c.hits)
        return found[:max_candidates], used
