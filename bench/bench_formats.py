"""Seed dev questions and cite cases against PDF, two-column PDF, scanned PDF, DOCX and HTML
versions of the seeds, beside the .txt figures; reading speed per format.

    python bench/bench_formats.py --out /tmp/formats [--formats txt,pdf,pdf2,scan,docx,html]

How a result is scored (the scorers compare offsets into the gold .txt): each result's (or
cite match's) `text` is located in the seed .txt files with the project's own citation
lookup (`rag.cite.citer.locate`: NFKC, letters and digits only, Traditional→Simplified,
at most 30% edits), keeping the best span in the file with the same stem; that span's
offsets replace the result's, and the unchanged scorers (score.py, score_cite.py) judge
it. A result whose text cannot be located counts as a miss. The .txt row goes through the
same mapping, so it shows the mapping costs nothing where offsets are already exact.

Boxes are checked for every cite match of the text PDFs: pypdfium2's `get_text_bounded`
over each box must give back the match's characters (normalized, in order, ≥ 95%).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import docgen  # noqa: E402

EVAL = Path(os.environ.get("EVAL_DIR", "/work/shared/eval"))
SEEDS = ROOT / "seeds"
PY = sys.executable


def make_corpus(fmt: str, out: Path) -> Path:
    d = out / f"corpus-{fmt}"
    if d.exists():
        return d
    d.mkdir(parents=True)
    for p in sorted(SEEDS.glob("*.txt")):
        text = p.read_text(encoding="utf-8")
        stem = p.stem
        if fmt == "txt":
            (d / p.name).write_bytes(p.read_bytes())
        elif fmt == "pdf":
            docgen.make_pdf(text, d / f"{stem}.pdf")
        elif fmt == "pdf2":
            docgen.make_pdf(text, d / f"{stem}.pdf", columns=2)
        elif fmt == "scan":
            tmp = out / f"{stem}-for-scan.pdf"
            docgen.make_pdf(text, tmp)
            docgen.scan_pdf(tmp, d / f"{stem}.pdf")
        elif fmt == "docx":
            docgen.make_docx(text, d / f"{stem}.docx")
        elif fmt == "html":
            docgen.make_html(text, d / f"{stem}.html", encoding="gbk", declare=stem.startswith("000"))
    return d


def run(*args: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([PY, "-m", "rag", *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"rag {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0


def mapper():
    from rag.cite.citer import locate
    from rag.index.ngrams import NgramIndex, normalize

    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))}
    ng = NgramIndex(files.items())

    def to_txt(source: str, text: str) -> tuple[str, int, int] | None:
        stem = Path(source).stem
        q = normalize(text)
        if len(q) < 4:
            return None
        for sim, lo, hi, _ in locate(ng, q[:1500]):
            f, s, e = ng.raw_span(lo, hi)
            if Path(ng.sources[f]).stem == stem:
                return ng.sources[f], s, e
        return None
    return to_txt


def remap(results: Path, key: str, out: Path, to_txt) -> dict:
    n = unmapped = 0
    with results.open(encoding="utf-8") as f, out.open("w", encoding="utf-8") as g:
        for line in f:
            row = json.loads(line)
            items = []
            for r in row.get(key) or []:
                n += 1
                m = to_txt(r["source"], r.get("text", ""))
                if m is None:
                    unmapped += 1
                    items.append({**r, "source": "(unmapped)"})
                else:
                    items.append({**r, "source": m[0], "start": m[1], "end": m[2]})
            row[key] = items
            g.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"items": n, "unmapped": unmapped}


def score(script: str, flag: str, cases: Path, results: Path) -> dict:
    r = subprocess.run([PY, str(EVAL / script), flag, str(cases), "--results", str(results),
                        "--corpus", str(SEEDS), "--json"], capture_output=True, text=True, cwd=ROOT)
    return json.loads([ln for ln in r.stdout.splitlines() if ln.strip()][-1])


def boxes_ok(corpus: Path, cite_results: Path) -> tuple[int, int]:
    """(best matches whose boxes give back their characters, best matches with boxes)."""
    from rag.index.ngrams import normalize

    ok = total = 0
    for line in cite_results.open(encoding="utf-8"):
        for m in json.loads(line).get("matches", [])[:1]:
            if not m.get("boxes"):
                continue
            total += 1
            got, want = normalize(docgen.boxed_text(corpus / m["source"], m["boxes"])), normalize(m["text"])
            ok += docgen.in_order_share(want, got) >= 0.99 and len(got) <= len(want) + 2
    return ok, total


def read_speed(corpus: Path, repeats: int) -> dict:
    """Median pages/s of the reader alone (for OCR: first run fills an empty cache)."""
    from rag.documents import read_document

    files = sorted(p for p in corpus.iterdir() if p.is_file())
    times, pages = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        pages = 0
        for p in files:
            d = read_document(corpus, p)
            pages += (d.meta or {}).get("pages", 1) if d else 0
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"pages": pages, "seconds": round(med, 3), "pages_per_s": round(pages / med, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-formats"))
    ap.add_argument("--formats", default="txt,pdf,pdf2,scan,docx,html")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAG_OCR_CACHE", str(a.out / "ocr-cache"))
    to_txt = mapper()
    rows = {}
    for fmt in a.formats.split(","):
        corpus = make_corpus(fmt, a.out)
        idx = a.out / f"idx-{fmt}"
        speed = read_speed(corpus, 1 if fmt == "scan" else a.repeats)
        if fmt == "scan":
            speed = {"first_read_with_ocr": speed, "cached": read_speed(corpus, a.repeats)}
        build_s = run("build", "--corpus", str(corpus), "--index", str(idx), "--rebuild")
        res, cite = a.out / f"{fmt}-results.jsonl", a.out / f"{fmt}-cite.jsonl"
        run("batch", str(EVAL / "seed_questions_dev.jsonl"), "-o", str(res), "-k", "10", "--index", str(idx))
        run("cite", "--input", str(EVAL / "seed_cite_dev.jsonl"), "-o", str(cite), "--index", str(idx))
        mres, mcite = a.out / f"{fmt}-results.txtmap.jsonl", a.out / f"{fmt}-cite.txtmap.jsonl"
        m1 = remap(res, "results", mres, to_txt)
        m2 = remap(cite, "matches", mcite, to_txt)
        s = score("score.py", "--queries", EVAL / "seed_questions_dev.jsonl", mres)
        c = score("score_cite.py", "--cases", EVAL / "seed_cite_dev.jsonl", mcite)
        row = {"R@1": round(s["recall@1"], 4), "R@5": round(s["recall@5"], 4), "MRR@10": round(s["mrr@10"], 4),
               "located@1": c["located@1"], "tight@1": c["tight@1"], "unmapped_results": m1, "unmapped_matches": m2,
               "read": speed, "build_s": round(build_s, 1)}
        if fmt in ("pdf", "pdf2"):
            row["cite_boxes_ok"] = "%d/%d" % boxes_ok(corpus, cite)
        rows[fmt] = row
        print(fmt, json.dumps(row, ensure_ascii=False), flush=True)
    (a.out / "formats.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
