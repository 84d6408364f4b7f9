"""Result files out: JSONL (one line per question) and CSV (one row per question and rank),
written beside their final name and moved there when complete.

Every CSV cell that a spreadsheet would run as a formula (it begins with `=`, `+`, `-`,
`@`, a tab or a carriage return; OWASP's rule) is written with a leading `'`, so a
question like `=HYPERLINK(...)` stays text.
"""
from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import IO

from rag.errors import BadInput, RagError

CSV_FIELDS = ["id", "query", "rank", "score", "source", "start", "end", "page", "title", "author",
              "section", "paragraph", "best_sentence", "text"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    """A cell a spreadsheet shows as text: formula-like strings get a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_row(record: dict, r: dict) -> dict:
    """One CSV row of a question's result (the citation fields a report needs)."""
    return {k: csv_safe(v) for k, v in {
        "id": record["id"], "query": record["query"], "rank": r["rank"], "score": r["score"],
        "source": r["source"], "start": r["start"], "end": r["end"], "page": r.get("page") or "",
        "title": r["title"], "author": r["author"], "section": " > ".join(r["section"]),
        "paragraph": r["paragraph"], "best_sentence": (r.get("best_sentence") or {}).get("text", ""),
        "text": r["text"]}.items()}


class Writer:
    """Writes result records as JSONL or CSV, to a file or stdout. A file is written beside
    its final name and moved there by close(); abort() drops it (the old file stays)."""

    def __init__(self, output: str | Path | None) -> None:
        self.path = Path(output) if output else None
        kind = self.path.suffix.lower() if self.path else ".jsonl"
        if kind not in (".jsonl", ".csv"):
            raise BadInput(f"{output}: output must be .jsonl or .csv")
        self.kind = kind
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp") if self.path else None
        self._done = False
        try:
            self._f: IO[str] = self._tmp.open("w", encoding="utf-8", newline="") if self._tmp else sys.stdout
        except OSError as e:
            raise RagError(f"cannot write {output}: {e.strerror or e}") from None
        self._csv = csv.DictWriter(self._f, CSV_FIELDS) if kind == ".csv" else None
        if self._csv:
            self._csv.writeheader()

    def write(self, record: dict) -> None:
        if self._csv is None:
            self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
            return
        for r in record["results"]:
            self._csv.writerow(csv_row(record, r))

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        if self.path:
            self._f.close()
            os.replace(self._tmp, self.path)
        else:
            self._f.flush()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        if self.path:
            self._f.close()
            self._tmp.unlink(missing_ok=True)
        else:
            self._f.flush()


