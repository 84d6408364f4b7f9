"""The chunk store: every chunk field plus the decoded text of every file, in SQLite.

Row `pos` of `chunks` is the chunk's position in the vector matrix and the BM25 index, so
the three parts agree by construction; the manifest records the counts that prove it.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from rag.chunks.citation import CHUNK_FIELDS, Chunk, decode_field, encode_field

# Columns follow the one citation record (rag.chunks.citation): a field added there is stored.
_COLS = ("id",) + tuple(f.name for f in CHUNK_FIELDS if f.name != "id")
_TYPES = {f.name: ("INTEGER" if str(f.type).startswith("int") else "TEXT") for f in CHUNK_FIELDS}
_COL_DEFS = ", ".join(f'"{c}" {_TYPES[c]}' for c in _COLS)
SCHEMA = f"""
CREATE TABLE files (source TEXT PRIMARY KEY, sha256 TEXT NOT NULL, encoding TEXT NOT NULL,
                    text TEXT NOT NULL, reader TEXT NOT NULL DEFAULT 'plaintext', layout TEXT,
                    meta TEXT);
CREATE TABLE chunks (pos INTEGER PRIMARY KEY, {_COL_DEFS}, UNIQUE(id));
CREATE INDEX chunks_source ON chunks(source, start);
"""


def file_row(d) -> tuple:
    """A document as a row of `files` (text files carry no layout)."""
    layout = d.layout.to_json() if getattr(d, "layout", None) is not None else None
    meta = json.dumps(d.meta, ensure_ascii=False) if getattr(d, "meta", None) else None
    return (d.source, d.sha256, d.encoding, d.text, getattr(d, "reader", "plaintext"), layout, meta)


def create(path: Path, files: Iterable[tuple], chunks: Iterable[Chunk]) -> int:
    """Write a new store; returns the number of chunks (their `pos` is 0..n-1 in order).
    `files` rows are `file_row(document)`."""
    con = sqlite3.connect(path)
    try:
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO files VALUES (?,?,?,?,?,?,?)", files)
        n = 0
        rows = []
        for c in chunks:
            rows.append((n, *(encode_field(col, getattr(c, col)) for col in _COLS)))
            n += 1
        con.executemany(f"INSERT INTO chunks VALUES ({','.join('?' * (len(_COLS) + 1))})", rows)
        con.commit()
        return n
    finally:
        con.close()


def _row_to_chunk(row: tuple, cols: tuple[str, ...] = _COLS) -> Chunk:
    return Chunk(**{c: decode_field(c, v) for c, v in zip(cols, row)
                    if v is not None or _TYPES[c] == "INTEGER"})


class Store:
    """Read-only access to a built store (one connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._uri = f"file:{path}?mode=ro&immutable=1"
        import threading

        self._local = threading.local()

    @property
    def con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
            self._local.con = con
        return con

    @property
    def cols(self) -> tuple[str, ...]:
        """The chunk columns this store has (a store written before a field existed lacks it)."""
        cols = getattr(self, "_cols", None)
        if cols is None:
            have = {r[1] for r in self.con.execute("PRAGMA table_info(chunks)")}
            cols = self._cols = tuple(c for c in _COLS if c in have)
        return cols

    def _select(self) -> str:
        return ", ".join(_quoted(c) for c in self.cols)

    def _chunk(self, row: tuple) -> Chunk:
        return _row_to_chunk(row, self.cols)

    def count(self) -> int:
        return self.con.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def chunks(self, positions: Iterable[int]) -> list[Chunk]:
        pos = [int(p) for p in positions]
        if not pos:
            return []
        q = f"SELECT pos, {self._select()} FROM chunks WHERE pos IN ({','.join('?' * len(pos))})"
        by_pos = {r[0]: self._chunk(r[1:]) for r in self.con.execute(q, pos)}
        return [by_pos[p] for p in pos]

    def iter_chunks(self) -> Iterator[tuple[int, Chunk]]:
        q = f"SELECT pos, {self._select()} FROM chunks ORDER BY pos"
        for r in self.con.execute(q):
            yield r[0], self._chunk(r[1:])

    def positions_where(self, source: str | None = None, article: str | None = None) -> list[int]:
        """Positions of chunks from a source (exact path or folder prefix) and/or an article
        whose title or author contains `article`."""
        sql, args = "SELECT pos FROM chunks WHERE 1=1", []
        if source:
            sql += " AND (source = ? OR source LIKE ? ESCAPE '\\')"
            args += [source, _like_prefix(source.rstrip("/")) + "/%"]
        if article:
            sql += " AND (instr(title, ?) > 0 OR instr(author, ?) > 0)"
            args += [article, article]
        return [r[0] for r in self.con.execute(sql + " ORDER BY pos", args)]

    def files(self) -> list[tuple[str, str, str]]:
        return list(self.con.execute("SELECT source, sha256, encoding FROM files ORDER BY source"))

    def file_text(self, source: str) -> str | None:
        r = self.con.execute("SELECT text FROM files WHERE source = ?", (source,)).fetchone()
        return r[0] if r else None

    def file_info(self, source: str) -> dict | None:
        """Reader, layout (JSON) and properties of a file; None when the file is unknown."""
        have = {r[1] for r in self.con.execute("PRAGMA table_info(files)")}
        if "reader" not in have:
            r = self.con.execute("SELECT encoding FROM files WHERE source = ?", (source,)).fetchone()
            return None if r is None else {"reader": "plaintext", "encoding": r[0], "layout": None, "meta": {}}
        r = self.con.execute("SELECT reader, encoding, layout, meta FROM files WHERE source = ?",
                             (source,)).fetchone()
        if r is None:
            return None
        return {"reader": r[0], "encoding": r[1], "layout": r[2], "meta": json.loads(r[3]) if r[3] else {}}

    def articles(self) -> list[dict]:
        q = ("SELECT source, article, title, author, affiliation, count(*), min(start), max(\"end\") "
             "FROM chunks GROUP BY source, article ORDER BY source, article")
        keys = ("source", "article", "title", "author", "affiliation", "chunks", "start", "end")
        return [dict(zip(keys, r)) for r in self.con.execute(q)]

    def neighbours(self, source: str, start: int, end: int, before: int = 1, after: int = 1) -> list[Chunk]:
        """The chunks around a span of a file, in reading order (for "show context")."""
        cols = self._select()
        prev = self.con.execute(f"SELECT {cols} FROM chunks WHERE source=? AND start<? "
                                f"ORDER BY start DESC LIMIT ?", (source, start, before)).fetchall()
        nxt = self.con.execute(f"SELECT {cols} FROM chunks WHERE source=? AND start>=? "
                               f"ORDER BY start LIMIT ?", (source, end, after)).fetchall()
        return [self._chunk(r) for r in reversed(prev)] + [self._chunk(r) for r in nxt]

    def covering(self, source: str, start: int, end: int) -> list[Chunk]:
        """The chunks of `source` overlapping the raw span [start, end), in reading order
        (for citation lookup: metadata of the chunk holding a match, page-break joins)."""
        cols = self._select()
        rows = self.con.execute(f"SELECT {cols} FROM chunks WHERE source=? AND start<? AND \"end\">? "
                                f"ORDER BY start", (source, max(end, start + 1), start)).fetchall()
        return [self._chunk(r) for r in rows]

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


def _quoted(col: str) -> str:
    return f'"{col}"'


def _like_prefix(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
