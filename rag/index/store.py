"""The chunk store of a segment: every chunk field plus the decoded text of every file, in
SQLite; the normalized text each chunk was keyword-indexed from (`tok`) and the quoted
terms of each file (`words`), so an update can re-cut the chunks a new word touches.

Row `pos` of `chunks` is the chunk's row in the segment's vector matrix and BM25 postings,
so the parts agree by construction; the segment records the counts that prove it.
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
SEGMENT_SCHEMA = """
CREATE TABLE tok (pos INTEGER PRIMARY KEY, ntext TEXT NOT NULL);
CREATE TABLE words (source TEXT NOT NULL, word TEXT NOT NULL);
CREATE INDEX words_source ON words(source);
"""
CHUNK_COLS = _COLS


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


def chunk_row(c: Chunk) -> tuple:
    """A chunk as the values of `chunks` columns (without pos)."""
    return tuple(encode_field(col, getattr(c, col)) for col in _COLS)


def create_segment(path: Path, files: Iterable[tuple], chunk_rows: Iterable[tuple],
                   ntexts: Iterable[str], words: Iterable[tuple[str, str]]) -> int:
    """Write a segment's store: `files` rows (file_row), chunk rows (chunk_row) numbered
    0..n-1 in order, the normalized text of each, and (source, word) quoted terms."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.executescript(SCHEMA + SEGMENT_SCHEMA)
        con.executemany("INSERT INTO files VALUES (?,?,?,?,?,?,?)", files)
        ph = ",".join("?" * (len(_COLS) + 1))
        n = 0

        def numbered(rows):
            nonlocal n
            for r in rows:
                yield (n, *r)
                n += 1
        con.executemany(f"INSERT INTO chunks VALUES ({ph})", numbered(chunk_rows))
        con.executemany("INSERT INTO tok VALUES (?,?)", enumerate(ntexts))
        con.executemany("INSERT INTO words VALUES (?,?)", words)
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

    def extent(self) -> int:
        """1 + the highest chunk position: the row count of a segment's store (positions are
        0..n-1), read from the rowid B-tree in O(log n); count(*) scanned the table, 0.56 s
        of opening a 1M-chunk index."""
        top = self.con.execute("SELECT max(pos) FROM chunks").fetchone()[0]
        return 0 if top is None else int(top) + 1

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

    def raw_rows(self, positions: list[int]) -> list[tuple]:
        """`chunks` rows (without pos), encoded as stored, in the order asked (merges)."""
        out: dict[int, tuple] = {}
        sel = ", ".join(_quoted(c) for c in _COLS)
        for a in range(0, len(positions), 900):
            part = positions[a:a + 900]
            q = f"SELECT pos, {sel} FROM chunks WHERE pos IN ({','.join('?' * len(part))})"
            out.update((r[0], r[1:]) for r in self.con.execute(q, part))
        return [out[p] for p in positions]

    def ntexts(self, positions: list[int]) -> list[str]:
        out: dict[int, str] = {}
        for a in range(0, len(positions), 900):
            part = positions[a:a + 900]
            out.update(self.con.execute(f"SELECT pos, ntext FROM tok WHERE pos IN ({','.join('?' * len(part))})", part))
        return [out[p] for p in positions]

    def rows_containing(self, words: list[str]) -> list[int]:
        """Rows whose keyword-indexed text contains any of `words` (re-cut on a word change)."""
        found: set[int] = set()
        for a in range(0, len(words), 50):
            part = words[a:a + 50]
            q = "SELECT pos FROM tok WHERE " + " OR ".join("instr(ntext, ?) > 0" for _ in part)
            found.update(r[0] for r in self.con.execute(q, part))
        return sorted(found)

    def rows_of(self, sources: list[str]) -> list[int]:
        out: list[int] = []
        for a in range(0, len(sources), 900):
            part = sources[a:a + 900]
            out += [r[0] for r in self.con.execute(
                f"SELECT pos FROM chunks WHERE source IN ({','.join('?' * len(part))})", part)]
        return sorted(out)

    def file_rows(self, sources: list[str]) -> list[tuple]:
        out = []
        for a in range(0, len(sources), 900):
            part = sources[a:a + 900]
            out += self.con.execute("SELECT source, sha256, encoding, text, reader, layout, meta FROM files "
                                    f"WHERE source IN ({','.join('?' * len(part))})", part).fetchall()
        return sorted(out)

    def words_of(self, sources: list[str]) -> list[tuple[str, str]]:
        out = []
        for a in range(0, len(sources), 900):
            part = sources[a:a + 900]
            out += self.con.execute(f"SELECT source, word FROM words WHERE source IN "
                                    f"({','.join('?' * len(part))})", part).fetchall()
        return out

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
