"""One hardened reader for every input file of queries or quotes (rag batch, rag eval,
rag cite --input, the app's batch tab), streamed so memory stays flat.

Inputs: `.txt` (one per line; id = line number), `.jsonl` (`{"id", "query", ...}`; other
fields are passed through), `.csv` (header with `id,query`). A bad line is reported with
its line number and skipped, or stops the run with `strict`.

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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator

from rag.errors import BadInput

INPUT_KINDS = (".txt", ".jsonl", ".csv")
MAX_LINE_BYTES = 1 << 20        # 1 MiB: a query is at most a few thousand characters


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
        raise BadInput(f"cannot read {path}: {e.strerror or e}") from None
    enc = "utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    return path.open(encoding=enc, errors="strict", newline="")


def read_items(path: str | Path, strict: bool = False,
               on_error: Callable[[str], None] = _warn, field: str = "query",
               kinds: tuple[str, ...] = INPUT_KINDS, name: str | None = None,
               what: str = "batch file") -> Iterator[Item]:
    """The queries of a batch file, read as they are consumed.

    The file type, its existence, its first line and (for .csv) its header are checked
    at once, before any item is asked for, so a caller can refuse a bad file before it
    opens (and truncates) an output file. `field` names the text column ("query", or
    "quote" for citation lookup); `name` is how messages name the file (an upload's own
    name rather than the server's temporary path).
    """
    path = Path(path)
    shown = Path(name) if name else path
    kind = (Path(name).suffix if name else path.suffix).lower()
    if kind not in kinds:
        raise BadInput(f"{shown}: unsupported {what} type {kind or '(none)'}; use "
                       + (", ".join(kinds[:-1]) + " or " + kinds[-1] if len(kinds) > 1 else kinds[0]))
    if not path.is_file():
        raise BadInput(f"{what} not found: {shown}")
    f = open_text(path)
    path = shown
    try:
        lines = _lines(f, path)
        first = next(lines, None)
        qi = ii = None
        if kind == ".csv" and first is not None:
            header = [h.strip().lower() for h in next(csv.reader([first[1]]), [])]
            if field not in header:
                raise BadInput(f"{path}:1: CSV header must have a '{field}' column (and usually 'id'), got {header}")
            qi, ii = header.index(field), header.index("id") if "id" in header else None
            first = None                      # the header is not a query
    except BaseException:
        f.close()
        raise
    head = [first] if first is not None else []
    return _items(f, itertools.chain(head, lines), path, kind, qi, ii, strict, on_error, field)


def _items(f: IO[str], lines: Iterator[tuple[int, str]], path: Path, kind: str, qi: int | None,
           ii: int | None, strict: bool, on_error: Callable[[str], None], field: str) -> Iterator[Item]:
    def bad(line: int, why: str) -> None:
        msg = f"{path}:{line}: {why}"
        if strict:
            raise BadInput(msg)
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
                except RecursionError:
                    bad(no, "JSON nested too deeply")
                    continue
                if not isinstance(obj, dict) or not isinstance(obj.get(field), str) or not obj[field].strip():
                    bad(no, f'expected an object with a non-empty "{field}"')
                    continue
                qid = obj.get("id", no)
                if not isinstance(qid, (str, int, float)) or isinstance(qid, bool):
                    qid = no
                extra = {k: v for k, v in obj.items() if k not in ("id", field, "results")}
                yield Item(no, str(qid), obj[field], extra)
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
                    bad(no, f"missing {field}")
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
            raise BadInput(f"{path}:{no + 1}: not valid UTF-16 text") from None
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
            raise BadInput(f"{path}:{no}: not valid UTF-8 text") from None
        yield no, line.rstrip("\r\n")


def _check_line(path: Path, no: int, has_nul: bool, length: int) -> None:
    if has_nul:
        raise BadInput(f"{path}:{no}: NUL bytes: binary data, not a text file of queries")
    if length > MAX_LINE_BYTES:
        raise BadInput(f"{path}:{no}: line longer than {MAX_LINE_BYTES // 2**20} MiB, "
                       f"not a file of queries")


