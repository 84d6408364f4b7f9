"""The chunk store: every chunk field plus the decoded text of every file, in SQLite.

Row `pos` of `chunks` is the chunk's position in the vector matrix and the BM25 index, so
the three parts agree by construction; the manifest records the counts that prove it.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from rag.chunking import Chunk

SCHEMA = """
CREATE TABLE files (source TEXT PRIMARY KEY, sha256 TEXT NOT NULL, encoding TEXT NOT NULL,
                    text TEXT NOT NULL);
CREATE TABLE chunks (pos INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
                     start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL,
                     title TEXT, author TEXT, affiliation TEXT, section TEXT, paragraph INTEGER,
                     article INTEGER, kind TEXT, joins TEXT);
CREATE INDEX chunks_source ON chunks(source, start);
"""
_COLS = ("id", "source", "start", "end", "text", "title", "author", "affiliation", "section",
         "paragraph", "article", "kind", "joins")


def create(path: Path, files: Iterable[tuple[str, str, str, str]], chunks: Iterable[Chunk]) -> int:
    """Write a new store; returns the number of chunks (their `pos` is 0..n-1 in order)."""
    con = sqlite3.connect(path)
    try:
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO files VALUES (?,?,?,?)", files)
        n = 0
        rows = []
        for c in chunks:
            rows.append((n, c.id, c.source, c.start, c.end, c.text, c.title, c.author,
                         c.affiliation, json.dumps(c.section, ensure_ascii=False), c.paragraph,
                         c.article, c.kind, json.dumps(c.joins)))
            n += 1
        con.executemany(f"INSERT INTO chunks VALUES ({','.join('?' * 14)})", rows)
        con.commit()
        return n
    finally:
        con.close()


def _row_to_chunk(row: tuple) -> Chunk:
    d = dict(zip(_COLS, row))
    d["section"] = json.loads(d["section"] or "[]")
    d["joins"] = json.loads(d["joins"] or "[]")
    return Chunk(**d)


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

    def count(self) -> int:
        return self.con.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def chunks(self, positions: Iterable[int]) -> list[Chunk]:
        pos = [int(p) for p in positions]
        if not pos:
            return []
        q = f"SELECT pos, {', '.join(_quoted(c) for c in _COLS)} FROM chunks WHERE pos IN ({','.join('?' * len(pos))})"
        by_pos = {r[0]: _row_to_chunk(r[1:]) for r in self.con.execute(q, pos)}
        return [by_pos[p] for p in pos]

    def iter_chunks(self) -> Iterator[tuple[int, Chunk]]:
        q = f"SELECT pos, {', '.join(_quoted(c) for c in _COLS)} FROM chunks ORDER BY pos"
        for r in self.con.execute(q):
            yield r[0], _row_to_chunk(r[1:])

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

    def articles(self) -> list[dict]:
        q = ("SELECT source, article, title, author, affiliation, count(*), min(start), max(\"end\") "
             "FROM chunks GROUP BY source, article ORDER BY source, article")
        keys = ("source", "article", "title", "author", "affiliation", "chunks", "start", "end")
        return [dict(zip(keys, r)) for r in self.con.execute(q)]

    def neighbours(self, source: str, start: int, end: int, before: int = 1, after: int = 1) -> list[Chunk]:
        """The chunks around a span of a file, in reading order (for "show context")."""
        cols = ", ".join(_quoted(c) for c in _COLS)
        prev = self.con.execute(f"SELECT {cols} FROM chunks WHERE source=? AND start<? "
                                f"ORDER BY start DESC LIMIT ?", (source, start, before)).fetchall()
        nxt = self.con.execute(f"SELECT {cols} FROM chunks WHERE source=? AND start>=? "
                               f"ORDER BY start LIMIT ?", (source, end, after)).fetchall()
        return [_row_to_chunk(r) for r in reversed(prev)] + [_row_to_chunk(r) for r in nxt]

    def covering(self, source: str, start: int, end: int) -> list[Chunk]:
        """The chunks of `source` overlapping the raw span [start, end), in reading order
        (for citation lookup: metadata of the chunk holding a match, page-break joins)."""
        cols = ", ".join(_quoted(c) for c in _COLS)
        rows = self.con.execute(f"SELECT {cols} FROM chunks WHERE source=? AND start<? AND \"end\">? "
                                f"ORDER BY start", (source, max(end, start + 1), start)).fetchall()
        return [_row_to_chunk(r) for r in rows]

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


def _quoted(col: str) -> str:
    return f'"{col}"'


def _like_prefix(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
