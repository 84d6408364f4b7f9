"""`metadata.csv` at a corpus root: bibliographic facts a text file cannot carry.

Header `file,journal,year,volume,issue,pages,url,type`; every column but `file` may be
empty. `file` is a path relative to the corpus root ("/" separators); `FILE#N` describes
article N of a file that holds several articles (N as in the results' `article` field),
and overrides the file's own row for that article. The file is never indexed
(rag.documents.corpus skips it); a bad row is reported and skipped, never guessed at.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

METADATA_FILE = "metadata.csv"
METADATA_HEADER = ("file", "journal", "year", "volume", "issue", "pages", "url", "type")
MAX_METADATA_BYTES = 8 * 2**20
FIELDS = METADATA_HEADER[1:]


@dataclass
class CorpusMetadata:
    """Rows by file, and by (file, article) for `FILE#N` rows."""
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    articles: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)

    def lookup(self, source: str, article: int | None = None) -> dict[str, str]:
        row = dict(self.files.get(source, {}))
        if article is not None:
            row.update({k: v for k, v in self.articles.get((source, int(article)), {}).items() if v})
        return row


def read_metadata(corpus: Path | None, warn: Callable[[str], None] = lambda _m: None) -> CorpusMetadata:
    """The corpus's metadata.csv, or empty metadata when there is none (or it is unreadable)."""
    out = CorpusMetadata()
    if corpus is None:
        return out
    path = Path(corpus) / METADATA_FILE
    try:
        if not path.is_file():
            return out
        if path.stat().st_size > MAX_METADATA_BYTES:
            warn(f"{path}: larger than {MAX_METADATA_BYTES // 2**20} MiB; ignored")
            return out
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        warn(f"{path}: cannot read ({e}); ignored")
        return out
    rows = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(rows, [])]
    if "file" not in header:
        warn(f"{path}:1: header must start with {','.join(METADATA_HEADER)}; ignored")
        return out
    col = {name: header.index(name) for name in METADATA_HEADER if name in header}
    for no, row in enumerate(rows, 2):
        if not any(c.strip() for c in row):
            continue
        name = row[col["file"]].strip().replace("\\", "/") if col["file"] < len(row) else ""
        if not name:
            warn(f"{path}:{no}: empty file column; skipped")
            continue
        rec = {f: row[col[f]].strip() for f in FIELDS if f in col and col[f] < len(row)}
        base, sep, art = name.rpartition("#")
        if sep and art.strip().isdigit():
            out.articles[(base, int(art))] = rec
        else:
            out.files[name] = rec
    return out
