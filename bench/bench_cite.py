"""Citation lookup: accuracy on generated variants and negatives, and latency.

    python bench/bench_cite.py accuracy --index DIR [--per-variant 60] [--seed 0]
    python bench/bench_cite.py latency  --index DIR [--large-chunks 100000] [--runs 7]

accuracy: takes random sentences of the indexed files and quotes them the ways people do
(punctuation and quote marks changed, full/half width, Traditional script, OCR or
homophone typos, dropped characters, fragments, across a page break, across two
paragraphs, longer than a chunk, combinations), and scores located@1 / tight@1 exactly
like /work/shared/eval/score_cite.py (top match in the gold file overlapping the gold span
by half its length; IoU >= 0.6). Then the false-match rate on quotes that are not in the
corpus: tests/data/cite_negatives.txt (police-work sentences in the seeds' style), CMRC
Wikipedia sentences, and seed sentences with 30-60% of their characters replaced. It also
prints, for the similarity and matched-length thresholds, what other values would give.

latency: median warm lookup time (matching only, and with related passages) at seed scale,
then the matching step over a synthetic corpus of >= --large-chunks chunk-sized passages
(CMRC passages and seed paragraphs, repeated with perturbations) for which only the
n-gram postings and a chunk store are built, no embeddings.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rag import cite  # noqa: E402
from rag.chunks.cleaning import clean_map  # noqa: E402
from rag.index.ngrams import normalize  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NEGATIVES = REPO / "tests" / "data" / "cite_negatives.txt"
CMRC = Path("/work/shared/eval/cmrc/corpus")
_SENT = re.compile(r"[^。！？；!?;\n]+[。！？；!?;]?[”’」』）)]?")
_PUNCT_SUBS = [" ", "，", ",", "、", "", ".", "；", "  "]


# ------------------------------------------------------------------------- variant cases

def _opencc(cfg: str):
    import opencc

    return opencc.OpenCC(cfg)


def sentences(store) -> list[tuple[str, str, int, int, list[int]]]:
    """(source, cleaned sentence, raw start, raw end, raw offset of each character) of
    every sentence of every chunk."""
    out = []
    for _pos, c in store.iter_chunks():
        raw = store.file_text(c.source)
        text, idx = clean_map(raw[c.start:c.end], c.joins, c.start)
        for m in _SENT.finditer(text):
            a, b = m.span()
            while a < b and text[a].isspace():
                a += 1
            while b > a and text[b - 1].isspace():
                b -= 1
            if b > a:
                out.append((c.source, text[a:b], idx[a], idx[b - 1] + 1, idx[a:b]))
    return out


def _flow(store, source: str) -> tuple[str, list[int]]:
    """The cleaned text of a whole file (chunk by chunk) and its raw offsets."""
    text, idx = [], []
    for c in [c for _p, c in store.iter_chunks() if c.source == source]:
        raw = store.file_text(source)
        t, i = clean_map(raw[c.start:c.end], c.joins, c.start)
        if text:
            text.append("\n")
            idx.append(c.start)
        text.append(t)
        idx.extend(i)
    return "".join(text), idx


def _typo(s: str, rng: random.Random, vocab: str, rate: float) -> str:
    pos = [i for i, ch in enumerate(s) if "\u4e00" <= ch <= "\u9fff"]
    k = max(1, round(len(pos) * rate))
    chars = list(s)
    for i in rng.sample(pos, min(k, len(pos))):
        chars[i] = rng.choice(vocab)
    return "".join(chars)


def _drop(s: str, rng: random.Random, rate: float) -> str:
    pos = [i for i, ch in enumerate(s) if "\u4e00" <= ch <= "\u9fff"]
    k = max(1, round(len(pos) * rate))
    gone = set(rng.sample(pos, min(k, len(pos))))
    return "".join(ch for i, ch in enumerate(s) if i not in gone)


def _punct(s: str, rng: random.Random) -> str:
    out = []
    for ch in s:
        if ch in "“”‘’「」":
            out.append(rng.choice(['"', "'", "", "「" if ch in "“‘「" else "」"]))
        elif not ch.isalnum() and not ch.isspace() and rng.random() < 0.8:
            out.append(rng.choice(_PUNCT_SUBS))
        else:
            out.append(ch)
    return "".join(out)


def _width(s: str, rng: random.Random) -> str:
    out = []
    for ch in s:
        o = ord(ch)
        if 0x21 <= o <= 0x7E:
            out.append(chr(o + 0xFEE0))                  # half -> full width
        elif 0xFF01 <= o <= 0xFF5E:
            out.append(chr(o - 0xFEE0))
        elif ch in "，。：；！？（）":
            out.append({"，": ",", "。": ".", "：": ":", "；": ";", "！": "!", "？": "?",
                        "（": "(", "）": ")"}[ch])
        else:
            out.append(ch)
    s2 = "".join(out)
    i = rng.randrange(len(s2) + 1)
    return s2[:i] + rng.choice(["\u3000", " ", "  "]) + s2[i:]


def _occurs_once(norm_corpus: str, s: str) -> bool:
    n = normalize(s)
    i = norm_corpus.find(n)
    return i >= 0 and norm_corpus.find(n, i + 1) < 0


def make_cases(store, per_variant: int = 60, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    s2t = _opencc("s2t")
    sents = sentences(store)
    norm_corpus = "\x00".join(normalize(store.file_text(s)) for s, _h, _e in store.files())
    vocab = "".join(sorted({ch for _s, t, _a, _b, _i in sents for ch in t if "\u4e00" <= ch <= "\u9fff"}))
    usable = [x for x in sents if 12 <= len(normalize(x[1])) <= 90 and _occurs_once(norm_corpus, x[1])]
    cases: list[dict] = []

    def add(variant, quote, source, start, end):
        cases.append({"id": f"{variant}-{len(cases)}", "variant": variant, "quote": quote,
                      "source": source, "start": start, "end": end})

    simple = {
        "exact": lambda t: t,
        "punct": lambda t: _punct(t, rng),
        "width": lambda t: _width(t, rng),
        "traditional": lambda t: s2t.convert(t),
        "typo": lambda t: _typo(t, rng, vocab, 0.08),
        "drop": lambda t: _drop(t, rng, 0.07),
        "trad_typo": lambda t: _typo(s2t.convert(t), rng, vocab, 0.06),
        "mixed": lambda t: _drop(_typo(_punct(t, rng), rng, vocab, 0.05), rng, 0.04),
    }
    for name, f in simple.items():
        for src, text, a, b, _i in rng.sample(usable, min(per_variant, len(usable))):
            add(name, f(text), src, a, b)
    # fragments from inside long sentences
    longs = [x for x in sents if len(x[1]) >= 30]

    def fragments(lo: int, hi: int):
        """`per_variant` fragments of lo..hi chars, each occurring once in the corpus."""
        n = 0
        while n < per_variant:
            src, text, a, b, idx = rng.choice(longs)
            L = rng.randint(lo, hi)
            i = rng.randrange(1, len(text) - L)
            frag = text[i:i + L]
            if "\n" in frag or not _occurs_once(norm_corpus, frag) or len(normalize(frag)) < 8:
                continue
            yield frag, src, idx[i], idx[i + L - 1] + 1
            n += 1

    for frag, src, start, end in fragments(10, 24):
        add("fragment", frag, src, start, end)
    for frag, src, start, end in fragments(8, 12):      # short fragments with one typo
        add("short_typo", _typo(frag, rng, vocab, 0.01), src, start, end)
    # across page breaks, across two paragraphs, longer than one chunk
    flows = {s: _flow(store, s) for s, _h, _e in store.files()}
    joins = [(c.source, j) for _p, c in store.iter_chunks() for j in c.joins]
    for src, j in rng.sample(joins, min(per_variant, len(joins))):
        text, idx = flows[src]
        k = next(i for i, r in enumerate(idx) if r >= j)
        a, b = max(0, k - rng.randint(12, 30)), min(len(text), k + rng.randint(12, 30))
        while a < k and "\n" in text[a:k]:
            a += 1
        while b > k and "\n" in text[k:b]:
            b -= 1
        if k - a < 4 or b - k < 4:
            continue
        add("page_break", text[a:b], src, idx[a], idx[b - 1] + 1)
    for src, (text, idx) in flows.items():
        breaks = [m.start() for m in re.finditer("\n", text)]
        for k in rng.sample(breaks, min(per_variant // 2, len(breaks))):
            a, b = max(0, k - rng.randint(10, 30)), min(len(text), k + 1 + rng.randint(10, 30))
            if "\n" in text[a:k] or "\n" in text[k + 1:b]:
                continue
            add("two_paragraphs", text[a:k] + rng.choice(["", "\n", " "]) + text[k + 1:b],
                src, idx[a], idx[b - 1] + 1)
    for _ in range(per_variant // 2):
        src = rng.choice(list(flows))
        text, idx = flows[src]
        L = rng.randint(400, 900)
        a = rng.randrange(0, max(1, len(text) - L))
        q = text[a:a + L].strip()
        add("long", _typo(q, rng, vocab, 0.02), src, idx[a], idx[a + L - 1] + 1)
    return cases


def negatives(store, rng: random.Random, n_cmrc: int = 300) -> list[tuple[str, str]]:
    out = [("written", l.strip()) for l in NEGATIVES.read_text(encoding="utf-8").splitlines()
           if l.strip() and not l.startswith("#")]
    cm = []
    for p in sorted(CMRC.glob("*.txt"))[:400]:
        cm += [s for s in _SENT.findall(p.read_text(encoding="utf-8")) if 12 <= len(s) <= 80]
    out += [("cmrc", s) for s in rng.sample(cm, min(n_cmrc, len(cm)))]
    sents = [t for _s, t, _a, _b, _i in sentences(store) if 15 <= len(t) <= 80]
    vocab = "".join(sorted({ch for t in sents for ch in t if "\u4e00" <= ch <= "\u9fff"}))
    norm_corpus = "\x00".join(normalize(store.file_text(s)) for s, _h, _e in store.files())
    pool = [q for _k, q in out]
    short = []
    while len(short) < 150:
        q = rng.choice(pool)
        L = rng.randint(8, 14)
        if len(q) <= L:
            continue
        i = rng.randrange(0, len(q) - L)
        w = q[i:i + L]
        if len(normalize(w)) >= 8 and normalize(w) not in norm_corpus:
            short.append(("short", w))
    out += short
    for rate in (0.3, 0.4, 0.5, 0.6):
        for t in rng.sample(sents, min(60, len(sents))):
            out.append((f"corrupt{int(rate * 100)}", _typo(t, rng, vocab, rate)))
    return out


def _score(case, matches) -> tuple[bool, bool]:
    if not matches:
        return False, False
    m = matches[0]
    g = (case["start"], case["end"])
    s = (m["start"], m["end"]) if isinstance(m, dict) else (m.start, m.end)
    src = m["source"] if isinstance(m, dict) else m.source
    ov = max(0, min(s[1], g[1]) - max(s[0], g[0]))
    loc = src == case["source"] and ov * 2 >= g[1] - g[0]
    iou = ov / (max(s[1], g[1]) - min(s[0], g[0]))
    return loc, loc and iou >= 0.6


def _best(ng, q: str) -> tuple[float, int, int]:
    """(similarity, edits, m) of the best-aligned candidate region, whatever its quality."""
    qn = normalize(q)
    best = cite.locate(ng, qn, tolerance=1.0)
    return (best[0][0], best[0][3], len(qn)) if best else (0.0, len(qn), len(qn))


def accuracy(args) -> dict:
    from rag.index import load

    index = load(args.index)
    citer = cite.Citer(index).warm()
    cases = make_cases(index.store, args.per_variant, args.seed)
    per: dict[str, list[int]] = {}
    sims_pos = []
    fails = []
    for c in cases:
        ms = citer.find(cite.clean_quote(c["quote"]))
        loc, tight = _score(c, ms)
        v = per.setdefault(c["variant"], [0, 0, 0])
        v[0] += 1
        v[1] += loc
        v[2] += tight
        ng = citer.postings
        sims_pos.append(_best(ng, c["quote"]))
        if not tight:
            fails.append((c["variant"], c["quote"][:60], [(m.kind, m.similarity, m.start, m.end) for m in ms[:2]],
                          (c["start"], c["end"])))
    rng = random.Random(args.seed + 1)
    neg = negatives(index.store, rng)
    neg_stats: dict[str, list[int]] = {}
    sims_neg: dict[str, list[float]] = {}
    false = []
    for kind, q in neg:
        ms = citer.find(cite.clean_quote(q))
        st = neg_stats.setdefault(kind, [0, 0])
        st[0] += 1
        st[1] += bool(ms)
        if ms:
            false.append((kind, q, ms[0].similarity, ms[0].text[:60]))
        sims_neg.setdefault(kind, []).append(_best(citer.postings, q))
    print(f"{'variant':16} {'n':>4} {'located@1':>10} {'tight@1':>8}")
    tot = [0, 0, 0]
    for k, (n, l, t) in per.items():
        print(f"{k:16} {n:4d} {l / n:10.3f} {t / n:8.3f}")
        tot = [tot[0] + n, tot[1] + l, tot[2] + t]
    print(f"{'all':16} {tot[0]:4d} {tot[1] / tot[0]:10.3f} {tot[2] / tot[0]:8.3f}")
    print(f"\n{'negatives':16} {'n':>4} {'matched':>8}  best-candidate similarity (max / p95 / median)")
    for k, (n, f) in neg_stats.items():
        s = sorted(x[0] for x in sims_neg[k])
        print(f"{k:16} {n:4d} {f / n:8.3f}  {s[-1]:.3f} / {s[int(0.95 * (len(s) - 1))]:.3f} / {statistics.median(s):.3f}")
    sp = sorted(x[0] for x in sims_pos)
    print(f"\npositives best-candidate similarity: min {sp[0]:.3f}, p1 {sp[int(0.01 * len(sp))]:.3f}, "
          f"p5 {sp[int(0.05 * len(sp))]:.3f}, median {statistics.median(sp):.3f}")
    allneg = [x for k, v in sims_neg.items() if not k.startswith("corrupt") for x in v]
    print("tolerance sweep: a match needs edits <= floor(t * (m - %d)); share of positives and of "
          "negatives (written, cmrc, short) whose best candidate passes:" % cite.EVIDENCE)
    for t in (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6):
        ok = lambda x: x[2] > 0 and x[1] <= cite.max_edits(x[2], t)
        print(f"  t = {t:.2f}: positives {np.mean([ok(x) for x in sims_pos]):.3f}, "
              f"negatives {np.mean([ok(x) for x in allneg]):.3f}")
    if fails:
        print("\nnot tight@1:")
        for f in fails[:30]:
            print("  ", f)
    if false:
        print("\nfalse matches:")
        for f in false[:30]:
            print("  ", f)
    return {"cases": tot[0], "located@1": tot[1] / tot[0], "tight@1": tot[2] / tot[0],
            "false_match_written_cmrc": sum(v[1] for k, v in neg_stats.items() if not k.startswith("corrupt"))}


# ------------------------------------------------------------------------------- latency

def _median_ms(f, runs: int) -> float:
    f()                                    # warm
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)


def _quotes(store, rng, n=20) -> list[str]:
    sents = [t for _s, t, _a, _b, _i in sentences(store) if 15 <= len(t) <= 80]
    s2t = _opencc("s2t")
    qs = rng.sample(sents, n // 2)
    qs += [s2t.convert(t)[:-3] for t in rng.sample(sents, n // 4)]
    qs += [l.strip() for l in NEGATIVES.read_text(encoding="utf-8").splitlines()
           if l.strip() and not l.startswith("#")][: n - len(qs)]
    return qs


def synthetic_store(folder: Path, min_chunks: int, seed: int = 0) -> Path:
    """A chunk store of >= min_chunks passages (~360 characters) from CMRC and the seeds,
    repeated with perturbations (characters replaced, sentences shuffled)."""
    from rag.chunks.chunker import Chunk
    from rag.index.store import create

    rng = random.Random(seed)
    base = [p.read_text(encoding="utf-8") for p in sorted(CMRC.glob("*.txt"))]
    base += [p.read_text(encoding="utf-8", errors="replace") for p in sorted((REPO / "seeds").glob("*.txt"))]
    paras = [x.strip() for t in base for x in re.split(r"\n\s*\n", t) if len(x.strip()) >= 40]
    vocab = "".join(sorted({ch for p in paras for ch in p if "\u4e00" <= ch <= "\u9fff"}))
    files, chunks = [], []
    n = 0
    fno = 0
    while n < min_chunks:
        parts = []
        for _ in range(200):
            p = rng.choice(paras)
            sents = _SENT.findall(p)
            rng.shuffle(sents)
            p = "".join(sents)
            p = _typo(p, rng, vocab, 0.03) if any("\u4e00" <= c <= "\u9fff" for c in p) else p
            parts.append(p)
        text = "\n\n".join(parts)
        src = f"syn/{fno:05d}.txt"
        fno += 1
        files.append((src, "-", "utf-8", text))
        pos = 0
        while pos < len(text):
            end = min(len(text), pos + 360)
            chunks.append(Chunk(id=f"{src}:{pos}", source=src, start=pos, end=end, text=text[pos:end],
                                title="synthetic", author="", section=[], paragraph=0))
            n += 1
            pos = end
    path = folder / "store.sqlite"
    create(path, files, chunks)
    return path


def latency(args) -> None:
    from rag.index import load
    from rag.index.store import Store

    rng = random.Random(args.seed)
    index = load(args.index)
    citer = cite.Citer(index)
    t = time.perf_counter()
    citer.warm()
    print(f"seed scale: {index.size} chunks, {citer.postings.n} normalized characters; "
          f"postings built in {(time.perf_counter() - t) * 1000:.0f} ms, {citer.postings.nbytes() / 1e6:.1f} MB")
    qs = _quotes(index.store, rng)
    ms = [_median_ms(lambda q=q: citer.lookup(q, related=False), args.runs) for q in qs]
    print(f"  lookup without related passages: median over {len(qs)} quotes of the per-quote "
          f"median of {args.runs} warm runs = {statistics.median(ms):.1f} ms (max {max(ms):.1f} ms)")
    citer.lookup(qs[0])
    mr = [_median_ms(lambda q=q: citer.lookup(q), max(3, args.runs // 2)) for q in qs[:8]]
    print(f"  lookup with related passages (k=5): median {statistics.median(mr):.1f} ms")
    if args.large_chunks <= 0:
        return
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        path = synthetic_store(Path(tmp), args.large_chunks, args.seed)
        st = Store(path)
        print(f"synthetic: {st.count()} chunks in {len(st.files())} files, store written in "
              f"{time.perf_counter() - t:.0f} s")
        big = cite.Citer(SimpleNamespace(store=st))
        t = time.perf_counter()
        big.warm()
        ng = big.postings
        print(f"  postings built in {time.perf_counter() - t:.1f} s: {ng.n / 1e6:.1f} M normalized "
              f"characters, {ng.nbytes() / 1e6:.0f} MB")
        src = rng.sample(ng.sources, 5)
        bq = []
        for s in src:
            text = st.file_text(s)
            for _ in range(4):
                a = rng.randrange(0, len(text) - 60)
                bq.append(text[a:a + rng.randint(15, 60)])
        bq += qs
        ms = [_median_ms(lambda q=q: big.lookup(q, related=False), args.runs) for q in bq]
        print(f"  lookup without related passages: median over {len(bq)} quotes {statistics.median(ms):.1f} ms "
              f"(p90 {sorted(ms)[int(0.9 * len(ms))]:.1f}, max {max(ms):.1f} ms)")
        found = sum(bool(big.find(q)) for q in bq[:20])
        print(f"  {found}/20 quotes taken from the synthetic files found")
        neg = [l.strip() for l in NEGATIVES.read_text(encoding="utf-8").splitlines()
               if l.strip() and not l.startswith("#")]
        short = []
        for q in neg:
            for L in (8, 10, 12):
                i = rng.randrange(0, len(q) - L)
                short.append(q[i:i + L])
        for name, group in (("written negatives", neg), ("8-12 character windows of them", short)):
            hits = [(q, big.find(q)) for q in group]
            bad = [(q, ms[0].similarity, ms[0].text[:30]) for q, ms in hits if ms]
            bests = [_best(ng, q) for q in group]
            best = sorted(b[0] for b in bests)
            sweep = ", ".join(f"t={t}: {sum(e <= cite.max_edits(m, t) for _s, e, m in bests if m)}"
                              for t in (0.25, 0.3, 0.4, 0.5))
            print(f"  {name}: {len(bad)}/{len(group)} matched at this scale; best-candidate "
                  f"similarity max {best[-1]:.3f}, median {statistics.median(best):.3f}; "
                  f"would match at other tolerances: {sweep}")
            for b in bad[:10]:
                print("     ", b)
        st.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", nargs="?", choices=["accuracy", "latency", "all"], default="all")
    ap.add_argument("--index", default="/tmp/ix")
    ap.add_argument("--per-variant", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--large-chunks", type=int, default=100_000)
    args = ap.parse_args()
    if args.mode in ("accuracy", "all"):
        accuracy(args)
    if args.mode in ("latency", "all"):
        latency(args)


if __name__ == "__main__":
    main()
