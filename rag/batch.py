"""Batch query files in and result files out, streamed so memory stays flat.

Inputs: `.txt` (one query per line; id = line number), `.jsonl` (`{"id", "query", ...}`;
other fields are passed through), `.csv` (header with `id,query`). A bad line is reported
with its line number and skipped, or stops the run with `strict`.
Outputs: `.jsonl` lines `{"id", "query", ..., "results": [...]}`; `.csv` one row per
(query, rank).

Size: a batch file of any size is streamed line by line (memory stays flat); a line is read
at most MAX_LINE_BYTES at a time, so a file that is not a query file is refused at once and
never loaded: a NUL byte (binary data, or e.g. a 1 GB sparse file) or a line longer than
MAX_LINE_BYTES stops the run with the line number, as does a line that is not UTF-8.
"""
from __future__ import annotations

import codecs
import csv
import itertools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator

from rag.errors import RagError

INPUT_KINDS = (".txt", ".jsonl", ".csv")
MAX_LINE_BYTES = 1 << 20        # 1 MiB: a query is at most a few thousand characters
CSV_FIELDS = ["id", "query", "rank", "score", "source", "start", "end", "title", "author",
              "section", "paragraph", "best_sentence", "text"]


@dataclass
class Item:
    line: int
    id: str
    query: str
    extra: dict


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def open_text(path: Path) -> IO[str]:
    """Open an input file as text: UTF-8 (BOM dropped) or UTF-16 with BOM."""
    try:
        head = path.open("rb").read(4)
    except OSError as e:
        raise RagError(f"cannot read {path}: {e.strerror or e}") from None
    enc = "utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    return path.open(encoding=enc, errors="strict", newline="")


def read_items(path: str | Path, strict: bool = False,
               on_error: Callable[[str], None] = _warn) -> Iterator[Item]:
    """The queries of a batch file, read as they are consumed.

    The file type, its existence, its first line and (for .csv) its header are checked
    at once, before any item is asked for, so a caller can refuse a bad file before it
    opens (and truncates) an output file.
    """
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in INPUT_KINDS:
        raise RagError(f"{path}: unsupported batch file type {kind or '(none)'}; use .txt, .jsonl or .csv")
    if not path.is_file():
        raise RagError(f"batch file not found: {path}")
    f = open_text(path)
    try:
        lines = _lines(f, path)
        first = next(lines, None)
        qi = ii = None
        if kind == ".csv" and first is not None:
            header = [h.strip().lower() for h in next(csv.reader([first[1]]), [])]
            if "query" not in header:
                raise RagError(f"{path}:1: CSV header must have a 'query' column (and usually 'id'), got {header}")
            qi, ii = header.index("query"), header.index("id") if "id" in header else None
            first = None                      # the header is not a query
    except BaseException:
        f.close()
        raise
    head = [first] if first is not None else []
    return _items(f, itertools.chain(head, lines), path, kind, qi, ii, strict, on_error)


def _items(f: IO[str], lines: Iterator[tuple[int, str]], path: Path, kind: str, qi: int | None,
           ii: int | None, strict: bool, on_error: Callable[[str], None]) -> Iterator[Item]:
    def bad(line: int, why: str) -> None:
        msg = f"{path}:{line}: {why}"
        if strict:
            raise RagError(msg)
        on_error(msg + " (skipped)")

    with f:
        if kind == ".txt":
            for no, line in lines:
                q = line.strip()
                if q:
                    yield Item(no, str(no), q, {})
        elif kind == ".jsonl":
            for no, line in lines:
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as e:
                    bad(no, f"malformed JSON ({e.msg})")
                    continue
                if not isinstance(obj, dict) or not isinstance(obj.get("query"), str) or not obj["query"].strip():
                    bad(no, 'expected an object with a non-empty "query"')
                    continue
                qid = obj.get("id", no)
                extra = {k: v for k, v in obj.items() if k not in ("id", "query", "results")}
                yield Item(no, str(qid), obj["query"], extra)
        else:
            if qi is None:                    # empty file: no header, no queries
                return
            for no, line in lines:
                if not line.strip():
                    continue
                try:
                    row = next(csv.reader([line]))
                except csv.Error as e:
                    bad(no, f"malformed CSV ({e})")
                    continue
                if len(row) <= qi or not row[qi].strip():
                    bad(no, "missing query")
                    continue
                yield Item(no, row[ii] if ii is not None and ii < len(row) else str(no), row[qi], {})


def _lines(f: IO[str], path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its end) of a file from open_text, checked line by line.
    UTF-8 is split and decoded a line at a time from the bytes, so a decoding error names its
    own line (a text-mode reader decodes ahead and would blame an earlier one)."""
    if f.encoding.lower().replace("_", "-") == "utf-8-sig":
        yield from _utf8_lines(f.buffer, path)
        return
    no = 0
    while True:
        try:
            line = f.readline(MAX_LINE_BYTES + 1)
        except UnicodeDecodeError:
            raise RagError(f"{path}:{no + 1}: not valid UTF-16 text") from None
        if not line:
            return
        no += 1
        _check_line(path, no, "\x00" in line, len(line.rstrip("\r\n")))
        yield no, line.rstrip("\r\n")


def _utf8_lines(buf, path: Path) -> Iterator[tuple[int, str]]:
    no = 0
    while True:
        raw = buf.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        no += 1
        if no == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        _check_line(path, no, b"\x00" in raw, len(raw.rstrip(b"\r\n")))
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RagError(f"{path}:{no}: not valid UTF-8 text") from None
        yield no, line.rstrip("\r\n")


def _check_line(path: Path, no: int, has_nul: bool, length: int) -> None:
    if has_nul:
        raise RagError(f"{path}:{no}: NUL bytes: binary data, not a text file of queries")
    if length > MAX_LINE_BYTES:
        raise RagError(f"{path}:{no}: line longer than {MAX_LINE_BYTES // 2**20} MiB, "
                       f"not a file of queries")


class Writer:
    """Writes result records as JSONL or CSV, to a file or stdout. A file is written beside
    its final name and moved there by close(); abort() drops it (the old file stays)."""

    def __init__(self, output: str | Path | None) -> None:
        self.path = Path(output) if output else None
        kind = self.path.suffix.lower() if self.path else ".jsonl"
        if kind not in (".jsonl", ".csv"):
            raise RagError(f"{output}: output must be .jsonl or .csv")
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
            self._csv.writerow({"id": record["id"], "query": record["query"], "rank": r["rank"],
                                "score": r["score"], "source": r["source"], "start": r["start"],
                                "end": r["end"], "title": r["title"], "author": r["author"],
                                "section": " > ".join(r["section"]), "paragraph": r["paragraph"],
                                "best_sentence": r["best_sentence"].get("text", ""), "text": r["text"]})

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


def chunked(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    buf: list[Item] = []
    for it in items:
        buf.append(it)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def answer(items: Iterator[Item], searcher, k: int, on_bad: Callable[[Item, RagError], None],
           size: int = 256, **filters) -> Iterator[tuple[list[Item], list[dict]]]:
    """Search the items in groups; yields each group with the records of its valid queries.

    A query that fails its check goes to `on_bad` (which may raise to stop the run).
    The next group is embedded on a worker thread while this one is ranked: the encoder
    runs outside the GIL, so the two overlap (about +10% throughput, bench/bench_search.py)."""
    from concurrent.futures import ThreadPoolExecutor

    from rag.search import clean_query

    def valid(group: list[Item]) -> list[Item]:
        ok = []
        for it in group:
            try:
                it.query = clean_query(it.query)
                ok.append(it)
            except RagError as e:
                on_bad(it, e)
        return ok

    def ranked(group: list[Item], ok: list[Item], vectors) -> tuple[list[Item], list[dict]]:
        found = searcher.search_many([it.query for it in ok], k=k, vectors=vectors.result(), **filters) \
            if ok else []
        return group, [{"id": it.id, "query": it.query, **it.extra, "results": [r.to_dict() for r in res]}
                       for it, res in zip(ok, found)]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-embed") as pool:
        pending = None
        for group in chunked(items, size):
            ok = valid(group)
            vectors = pool.submit(searcher.embed, [it.query for it in ok])
            if pending is not None:
                yield ranked(*pending)
            pending = (group, ok, vectors)
        if pending is not None:
            yield ranked(*pending)
