"""Proof that the sentencepiece tokenizer (rag.embed.spm_tokenizer) gives e5-small the same
ids as the `tokenizers` model of the same tokenizer.json, on every seed text (files and
lines), CMRC passage, CMRC trial question and seed question, bare and with the
"query: " / "passage: " prompts; and what each costs in time and memory.

    python bench/bench_spm_ids.py [--model-dir DIR]

Prints the number of texts, of tokens and of texts whose ids differ (must be 0), and exits
non-zero when any differ.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EVAL = REPO.parent / "shared" / "eval"


def texts() -> list[str]:
    out: list[str] = []
    for p in sorted((REPO / "seeds").glob("*.txt")):
        s = p.read_text(encoding="utf-8")
        out += [s, *[x for x in s.split("\n") if x.strip()]]
    for p in sorted((EVAL / "cmrc" / "corpus").glob("*.txt")):
        out.append(p.read_text(encoding="utf-8"))
    for f in (EVAL / "cmrc" / "queries_trial.jsonl", EVAL / "seed_questions_dev.jsonl"):
        for line in f.read_text(encoding="utf-8").splitlines():
            o = json.loads(line)
            out.append(o.get("query") or o.get("question") or "")
    return out + ["query: " + t for t in out] + ["passage: " + t for t in out]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir")
    args = ap.parse_args()
    from tokenizers import Tokenizer

    from rag.embed.spm_tokenizer import SpmTokenizer
    if args.model_dir:
        d = Path(args.model_dir)
    else:
        from rag.models import ensure_e5_small
        d = ensure_e5_small()
    ts = texts()
    hf = Tokenizer.from_file(str(d / "tokenizer.json"))
    hf.no_truncation()
    hf.no_padding()
    sp = SpmTokenizer(d)
    t0 = time.perf_counter()
    a = [e.ids for e in hf.encode_batch(ts, add_special_tokens=False)]
    t_hf = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = sp.encode_batch(ts)
    t_sp = time.perf_counter() - t0
    bad = [i for i in range(len(ts)) if a[i] != b[i]]
    print(json.dumps({"texts": len(ts), "tokens": sum(map(len, a)), "differ": len(bad),
                      "tokenizers_s": round(t_hf, 2), "sentencepiece_s": round(t_sp, 2)}))
    for i in bad[:5]:
        print("differs:", repr(ts[i][:80]), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
