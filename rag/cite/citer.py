"""Citation lookup: where does a pasted quote come from, and is it quoted correctly?

The answer is either exact characters of an original file (`Match.source`, `start`, `end`:
`raw[start:end]` is the original wording, possibly running across a page break or a
paragraph break) or an honest "not in the corpus", with the semantically nearest passages
listed separately and labelled as *not* matches.

Method (see `rag.ngrams`):
1. The quote and every file are normalized the same way (NFKC, lower case, only letters
   and digits kept, OpenCC t2s), with a map from normalized to raw offsets.
2. Candidate regions come from character-bigram postings over the normalized files: the
   quote's bigrams are looked up (the rarest first, within a hit budget) and hits are
   counted per diagonal band (text position minus quote position).
3. In each candidate window the whole quote is aligned (Levenshtein, free ends in the
   text) to find the tightest span; the span maps back to raw offsets and is widened only
   over punctuation the quote itself has at its ends (a closing "。" or opening "“").
4. A region is a match when the edit distance between the normalized quote (m letters and
   digits) and the normalized span is at most

       max_edits(m) = floor(TOLERANCE * (m - EVIDENCE))        TOLERANCE 0.3, EVIDENCE 4

   i.e. about three characters in ten may be wrong, dropped or added, but the quote must
   carry EVIDENCE characters beyond that allowance: quotes of 4-7 letters/digits match
   only exactly (one changed character in a 6-character phrase is a different phrase, and
   such near-misses of stock phrases are everywhere), 8-10 allow one edit, 11-13 two,
   40 ten. This implies similarity > 0.7 and at least 70% of the quote's characters
   found in order. `similarity` = 1 - edits / max(m, len(span)), normalized texts.
   Chosen by measurement (bench/bench_cite.py accuracy, ~700 generated variants of seed
   sentences: typos, drops, Traditional script, punctuation, width, fragments, page
   breaks, two paragraphs, longer than a chunk, combinations; 480 negatives): positives'
   best regions score >= 0.82 similarity; not-in-corpus sentences in the seeds' style
   score <= 0.41, CMRC sentences <= 0.30. Sweeping TOLERANCE, positives found are 0.85
   at 0.10, 0.997 at 0.25 and 1.0 from 0.30; no negative passes below 0.5, where 8-char
   windows of stock phrases two edits off ("依法严厉打击侵犯" / "依法严厉打击整治") start
   to. 0.30 is the smallest value that finds every positive, so a "match" still means
   the same text with a few slips (seed sentences with 30% of characters replaced mostly
   stay unmatched).
Kinds: "exact" (the quote equals the original wording, whitespace aside), "normalized"
(equal after normalization: punctuation, quote marks, width, script, spacing differ),
"fuzzy" (typos, dropped or added characters). A quote with fewer than MIN_CHARS letters or
digits is refused with a RagError: it would occur all over any corpus and says nothing
about where it was taken from.
"""
from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz.distance import Levenshtein

from rag.chunks import Citation
from rag.chunks.cleaning import clean
from rag.index.ngrams import NgramIndex, _fold, align, normalize
from rag.errors import BadK, QuoteTooShort
from rag.search import Searcher, clean_input

MAX_QUOTE_CHARS = 2000
MIN_CHARS = 4              # letters/digits a quote needs to be looked up at all
TOLERANCE = 0.3            # edits allowed per normalized character ...
EVIDENCE = 4               # ... beyond the first EVIDENCE characters (see max_edits)
MAX_MATCHES = 50
MAX_RELATED = 100          # the search engine's own limit on k
RELATED_LABEL = "related, not a match"
_WS = re.compile(r"\s+")


@dataclass(kw_only=True)
class Match(Citation):
    """Where a quote stands: the citation record plus how close the original is."""
    similarity: float
    kind: str                    # exact | normalized | fuzzy
    diff: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**self.citation(), "similarity": self.similarity, "kind": self.kind,
                "diff": [dict(d) for d in self.diff]}


@dataclass
class CiteResult:
    quote: str
    matches: list[Match]
    related: list[dict]

    def to_dict(self) -> dict:
        return {"quote": self.quote, "matches": [m.to_dict() for m in self.matches],
                "related": self.related}


def clean_quote(quote: object) -> str:
    """The quote as it will be looked up, or a one-line error saying what is wrong."""
    return clean_input(quote, "quote", MAX_QUOTE_CHARS)


def check_quote(quote: object) -> tuple[str, str]:
    """The cleaned quote and its normalized form, or a RagError (empty, too long, or fewer
    than MIN_CHARS letters/digits)."""
    q = clean_quote(quote)
    qnorm = normalize(q)
    if len(qnorm) < MIN_CHARS:
        raise QuoteTooShort(f"the quote is too short to locate: it has {len(qnorm)} letters or digits, "
                            f"at least {MIN_CHARS} are needed", len(qnorm), MIN_CHARS)
    return q, qnorm


# ------------------------------------------------------------------- postings per index

_postings_lock = threading.Lock()


def postings_for(index) -> NgramIndex:
    """The n-gram postings of a loaded index: stored in each segment when it was written and
    memory-mapped here (`Index.cite_postings()`), so the first lookup after a start is as
    fast as the next; an index that stores none (another backend) gets them built once per
    generation and kept on it (a generation is immutable)."""
    with _postings_lock:
        ng = index.cache.get("cite_postings")
        if ng is None:
            stored = getattr(index, "cite_postings", None)
            ng = stored() if stored is not None else None
            if ng is None:
                st = index.store
                ng = NgramIndex((src, st.file_text(src) or "") for src, _sha, _enc in st.files())
            index.cache["cite_postings"] = ng
        return ng


def diff_ops(quote: str, original: str) -> list[dict]:
    """Character-level diff turning the quote into the original (empty when equal)."""
    if quote == original:
        return []
    ops = []
    for op in Levenshtein.opcodes(quote, original):
        tag = op.tag
        a, b = quote[op.src_start:op.src_end], original[op.dest_start:op.dest_end]
        if ops and ops[-1]["op"] == tag:
            ops[-1]["quote"] += a
            ops[-1]["original"] += b
        else:
            ops.append({"op": tag, "quote": a, "original": b})
    return ops


def render_diff(ops: list[dict]) -> str:
    """[-quote-]{+original+} markup of a diff."""
    out = []
    for o in ops:
        if o["op"] == "equal":
            out.append(o["quote"])
        else:
            if o["quote"]:
                out.append(f"[-{o['quote']}-]")
            if o["original"]:
                out.append(f"{{+{o['original']}+}}")
    return "".join(out)


def _is_punct(ch: str) -> bool:
    return not ch.isspace() and not _fold(ch)


def _edge_punct(q: str) -> tuple[int, int]:
    """How many punctuation characters the quote has at its start and at its end."""
    a = 0
    while a < len(q) and _is_punct(q[a]):
        a += 1
    b = 0
    while b < len(q) - a and _is_punct(q[len(q) - 1 - b]):
        b += 1
    return a, b


_PUNCT_CLASSES = ("“”‘’\"'「」『』〝〞«»", "。．.!！?？…", "，,、;；:：", "（(）)【】[]《》〈〉<>")


def _same_punct(a: str, b: str) -> bool:
    """Whether raw punctuation `b` stands where the quote has `a` (same mark up to width,
    or the same kind: quote marks, sentence ends, commas, brackets)."""
    if not _is_punct(b):
        return False
    if unicodedata.normalize("NFKC", a) == unicodedata.normalize("NFKC", b):
        return True
    return any(a in c and b in c for c in _PUNCT_CLASSES)


def _nows(s: str) -> str:
    return _WS.sub("", s)


class Citer:
    def __init__(self, index, searcher=None):
        self.index = index
        self.searcher = searcher
        self._searcher_lock = threading.Lock()

    @property
    def postings(self) -> NgramIndex:
        return postings_for(self.index)

    def warm(self) -> "Citer":
        """Build the postings now rather than on the first lookup."""
        _ = self.postings
        return self

    def lookup(self, quote: str, k: int = 5, related: bool = True) -> CiteResult:
        q, qnorm = check_quote(quote)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_RELATED:
            raise BadK(f"k must be a whole number between 1 and {MAX_RELATED}, not {k!r}")
        matches = self.find(q, qnorm)
        rel = self.related(q, k, matches) if related else []
        return CiteResult(quote=q, matches=matches, related=rel)

    # ---- matching
    def find(self, q: str, qnorm: str | None = None) -> list[Match]:
        """The matches of a (cleaned) quote, best first; no validation, no related passages."""
        ng = self.postings
        spans = locate(ng, normalize(q) if qnorm is None else qnorm)
        return [self._match(q, ng, *span) for span in spans]

    def _match(self, q: str, ng: NgramIndex, sim: float, lo: int, hi: int, edits: int) -> Match:
        f, start, end = ng.raw_span(lo, hi)
        source = ng.sources[f]
        store = self.index.store
        raw = _file_text(self.index, source)
        head, tail = _edge_punct(q)
        for ch in reversed(q[:head]):          # the quote's opening marks, inside out
            if start > 0 and _same_punct(ch, raw[start - 1]):
                start -= 1
            else:
                break
        for ch in q[len(q) - tail:]:            # its closing punctuation, in order
            if end < len(raw) and _same_punct(ch, raw[end]):
                end += 1
            else:
                break
        chunks = store.covering(source, start, end)
        joins = sorted({j for c in chunks for j in c.joins if start <= j < end})
        text = clean(raw[start:end], joins, start)
        home = next((c for c in chunks if c.start <= start < c.end), chunks[0] if chunks else None)
        if _nows(q) == _nows(text):
            kind = "exact"
        elif edits == 0:
            kind = "normalized"
        else:
            kind = "fuzzy"
        where = home.citation() if home else {}
        where.update(source=source, start=start, end=end, text=text)
        if home is not None and home.page is not None:    # paged documents: the match's own page and boxes
            from rag.documents.layout_store import locate as locate_span

            where["page"], where["page_end"], where["boxes"] = locate_span(store, source, start, end)
        if home is None:
            where["section"] = []
        return Match(**where, similarity=round(sim, 4), kind=kind, diff=diff_ops(q, text))

    # ---- related passages (never matches)
    def related(self, q: str, k: int, matches: list[Match]) -> list[dict]:
        with self._searcher_lock:
            if self.searcher is None:
                self.searcher = Searcher(self.index)
        out = []
        for r in self.searcher.search(q, k=min(k + len(matches), MAX_RELATED)):
            if any(m.source == r.source and r.start < m.end and m.start < r.end for m in matches):
                continue
            d = r.to_dict()
            d["label"] = RELATED_LABEL
            out.append(d)
            if len(out) == k:
                break
        for i, d in enumerate(out, 1):
            d["rank"] = i
        return out


def max_edits(m: int, tolerance: float = TOLERANCE) -> int:
    """Edits a match of a quote with m normalized characters may have (fewer than m/3 for
    any tolerance below 1/3, which the candidate search in rag.ngrams relies on)."""
    return max(0, int(tolerance * (m - EVIDENCE)))


def locate(ng: NgramIndex, qnorm: str, tolerance: float = TOLERANCE) -> list[tuple[float, int, int, int]]:
    """Where a normalized quote matches: (similarity, lo, hi, edits) of global normalized
    spans [lo, hi), best first, non-overlapping, at most MAX_MATCHES. (`tolerance` is a
    parameter only so that benchmarks can measure what other values would give.)"""
    qids = ng.quote_ids(qnorm)
    m = len(qids)
    allowed = max_edits(m, tolerance)
    # each edit breaks at most two of the quote's bigrams
    cands, _ = ng.candidates(qids, max_candidates=MAX_MATCHES, max_broken=2 * allowed)
    found: list[tuple[float, int, int, int]] = []
    for c in cands:
        window = ng.text(c.lo, c.hi)
        k = window.find(qnorm)
        if k >= 0:                       # verbatim after normalization: no alignment needed
            lo, hi, edits = c.lo + k, c.lo + k + m, 0
        else:
            t = ng.ids[c.lo:c.hi].astype(np.int64)
            s, e, _ = align(qids, t, expect_start=max(0, (c.hi - c.lo - m) // 2))
            if e <= s:
                continue
            lo, hi = c.lo + s, c.lo + e
            edits = Levenshtein.distance(qnorm, ng.text(lo, hi), score_cutoff=allowed + 1)
            if edits > allowed:
                continue
        found.append((1.0 - edits / max(m, hi - lo), lo, hi, edits))
    found.sort(key=lambda x: (-x[0], x[1]))
    out: list[tuple[float, int, int, int]] = []
    for f in found:                      # best first; drop spans overlapping a better one
        if not any(f[1] < h and l < f[2] for _, l, h, _ in out):
            out.append(f)
    return out[:MAX_MATCHES]


def _file_text(index, source: str) -> str:
    texts = index.cache.setdefault("cite_texts", {})
    t = texts.get(source)
    if t is None:
        t = index.store.file_text(source) or ""
        if len(texts) > 512:
            texts.clear()
        texts[source] = t
    return t


# ----------------------------------------------------------------------------------- CLI

def format_result(res: CiteResult) -> str:
    lines = [f"quote: {res.quote}"]
    if not res.matches:
        lines.append("not found in the corpus")
    for i, m in enumerate(res.matches, 1):
        where = " > ".join(m.section)
        lines.append(f"{i}. {m.kind}  similarity {m.similarity:.3f}  {m.source} [{m.start}:{m.end}]")
        lines.append(f"   《{m.title}》 {m.author}" + (f" · {where}" if where else "") + f" · ¶{m.paragraph}")
        lines.append("   original: " + m.text.replace("\n", "\n             "))
        if m.diff:
            lines.append("   diff:     " + render_diff(m.diff).replace("\n", "\n             "))
    if res.related:
        lines.append("")
        lines.append("related passages (" + RELATED_LABEL + "):" if not res.matches
                     else "other related passages (" + RELATED_LABEL + "):")
        for r in res.related:
            lines.append(f"  - {r['source']} [{r['start']}:{r['end']}] 《{r['title']}》 {r['author']}")
            best = (r.get("best_sentence") or {}).get("text") or r["text"]
            lines.append("    " + best.replace("\n", " ")[:200])
    return "\n".join(lines)


