"""`rag batch`: answer a file of queries (.txt, .jsonl, .csv) into .jsonl or .csv."""
from __future__ import annotations

import argparse
import sys

from rag.cli.common import add_filters, add_index, searcher
from rag.errors import BadInput, RagError


def add(sub) -> None:
    p = sub.add_parser("batch", help="answer a file of queries (.txt, .jsonl, .csv)")
    p.add_argument("input")
    p.add_argument("-o", "--output", help=".jsonl (default: stdout), .csv or .ris")
    p.add_argument("--format", choices=("jsonl", "csv", "ris"), default=None,
                   help="output format (default: from the output's suffix, else jsonl); ris: one "
                        "GB/T 7714-described RIS record per result, for NoteExpress/EndNote/Zotero")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--strict", action="store_true", help="stop at the first bad line")
    add_index(p)
    add_filters(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rag.batchio import Writer, answer, read_items
    from rag.embed import show_progress
    from rag.search import check_k

    check_k(args.k)
    items = read_items(args.input, strict=args.strict)     # a bad file is refused before loading
    s = searcher(args)
    fmt = args.format or ("ris" if args.output and args.output.lower().endswith(".ris") else None)
    if fmt == "csv" and args.output and not args.output.lower().endswith(".csv"):
        raise BadInput(f"{args.output}: --format csv writes a .csv file")
    writer = RisWriter(args.output, s.index) if fmt == "ris" else Writer(args.output)
    bar = None
    if show_progress():
        from tqdm import tqdm

        bar = tqdm(desc="queries", unit="q")

    def bad(it, e: RagError) -> None:
        if args.strict:
            raise BadInput(f"{args.input}:{it.line}: {e}") from None
        print(f"warning: {args.input}:{it.line}: {e} (skipped)", file=sys.stderr)

    done = 0
    try:
        for group, records in answer(items, s, args.k, bad, source=args.source, article=args.article):
            for rec in records:
                writer.write(rec)
            done += len(records)
            if bar:
                bar.update(len(group))
    except BaseException:
        writer.abort()           # a run that fails leaves an earlier output file as it was
        raise
    finally:
        writer.close()
        if bar:
            bar.close()
    print(f"{done} queries answered", file=sys.stderr)
    return 0


class RisWriter:
    """`rag batch --format ris`: each result's article as a RIS record (rag.references), with
    the passage's exact location and best sentence in N1; written beside the output file and
    moved there when complete, like rag.batchio.Writer."""

    def __init__(self, output: str | None, index) -> None:
        import os
        from pathlib import Path

        from rag.references import Referencer

        self.index = index
        corpus = index.manifest.get("corpus")
        self.ref = Referencer(Path(corpus) if corpus else None)
        self.path = Path(output) if output else None
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp") if self.path else None
        try:
            self._f = self._tmp.open("w", encoding="utf-8", newline="\n") if self._tmp else sys.stdout
        except OSError as e:
            raise RagError(f"cannot write {output}: {e.strerror or e}") from None

    def write(self, record: dict) -> None:
        from rag.references import location_text, ris_record

        for r in record["results"]:
            w = self.ref.work(r, self.index)
            self._f.write(ris_record(w, location_text(r), (r.get("best_sentence") or {}).get("text", "")) + "\n")

    def close(self) -> None:
        import os

        if self.path and not self._f.closed:
            self._f.close()
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self.path and not self._f.closed:
            self._f.close()
            self._tmp.unlink(missing_ok=True)
