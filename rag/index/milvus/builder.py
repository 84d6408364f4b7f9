"""Build or update a Milvus-backed index: the same corpus reading, chunking and embedding
as the local index; rows into Milvus; the local manifest is the commit point.

- Full build (first build, `--rebuild`): a new collection `<alias>_gNNNNNN`, rows inserted,
  counts checked, manifest committed, the alias moved to it (Milvus's recommended
  switch); the previous collection stays for readers of the previous generation and is
  dropped by the next full build.
- Update by file: rows of added and changed files are inserted at fresh positions; the
  rows they replace (and those of removed files) are retired in the new manifest (hidden
  from it) and deleted by the first update at least RETIRE_GRACE_S later, so a request
  begun on the previous generation never misses a row. A killed build leaves rows above the committed `next_pos` (invisible to readers);
  the next build deletes them first.
- Writes are serialised and counted: after inserting, the rows of the new position range
  are counted and missing ones inserted again (milvus-lite lost confirmed rows under
  concurrent inserts, issue 14); a shortfall that persists is an error, never a commit.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Callable

import numpy as np

from rag import settings as rag_settings
from rag.chunks import Chunk, ChunkSettings, chunk_document, embed_text
from rag.documents import load_corpus
from rag.embed import DEFAULT_EMBEDDER, get_embedder, same_vectors
from rag.errors import BackendError, IndexMismatch
from rag.index.builder import BuildReport
from rag.index.layout import writer_lock
from rag.index.milvus import connection, schema, state
from rag.index.milvus.index import IN_BATCH, _ids, _q, row_chunk, snapshot_filter
from rag.index.milvus.keywords import Stats, doc_vector
from rag.index.sparse import Tokenizer, quoted_terms

INSERT_BATCH = 256
SAMPLE = 32                       # vectors whose checksums `rag check` compares
# rows an update replaced stay (hidden from the new generation) until an update at least
# this long after: a request begun on the old generation finishes before they go
RETIRE_GRACE_S = 60.0
CRASH_POINTS = ("milvus-mid-insert", "milvus-after-insert", "milvus-after-commit")


def _crash_point(name: str) -> None:
    """Test hook: die here as `kill -9` would, when RAG_CRASH_AT names this point."""
    if os.environ.get("RAG_CRASH_AT", rag_settings.get().crash_at) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _vec_sum(v: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(v, dtype=np.float32).tobytes()).hexdigest()[:16]


def _record(c: Chunk) -> str:
    d = c.to_dict()
    d.pop("text", None)
    raw = json.dumps(d, ensure_ascii=False)
    if len(raw.encode("utf-8")) > schema.MAX_VARCHAR:
        raise BackendError(f"{c.source}: the record of chunk {c.id} is over 64 KB (too many layout "
                           f"boxes); it cannot be stored in Milvus")
    return raw


def _file_parts(d, fgen: int) -> list[dict]:
    layout = d.layout.to_json() if getattr(d, "layout", None) is not None else None
    data = json.dumps({"text": d.text, "sha256": d.sha256, "encoding": d.encoding,
                       "reader": getattr(d, "reader", "plaintext"), "layout": layout,
                       "meta": getattr(d, "meta", None) or {}}, ensure_ascii=False)
    key = hashlib.sha1(d.source.encode("utf-8")).hexdigest()[:24]
    parts = [data[i:i + schema.PART_CHARS] for i in range(0, len(data), schema.PART_CHARS)] or [""]
    return [{"key": f"{key}:{fgen}:{i}", "source": d.source, "fgen": fgen, "part": i, "data": p,
             "pad": [0.0, 0.0]} for i, p in enumerate(parts)]


class _Writer:
    """Serialised, counted writes to one collection pair."""

    def __init__(self, target: connection.Target, client, name: str) -> None:
        self.t, self.c, self.name, self.files = target, client, name, schema.files_name(name)

    def call(self, fn, *a, **kw):
        with connection.WRITE_LOCK:
            return connection.call(self.t, fn, *a, **kw)

    def count(self, expr: str, coll: str | None = None) -> int:
        r = self.call(self.c.query, coll or self.name, filter=expr, output_fields=["count(*)"])
        return int(r[0]["count(*)"])

    def insert_rows(self, rows: list[dict], coll: str | None = None, after_first: Callable[[], None] | None = None) -> None:
        for i in range(0, len(rows), INSERT_BATCH):
            self.call(self.c.insert, coll or self.name, rows[i:i + INSERT_BATCH])
            if i == 0 and after_first:
                after_first()

    def insert_checked(self, rows: list[dict], key: str, coll: str | None = None,
                       after_first: Callable[[], None] | None = None) -> None:
        """Insert, then count what arrived; insert what is missing again (twice at most)."""
        coll = coll or self.name
        self.insert_rows(rows, coll, after_first)
        for attempt in range(3):
            self.call(self.c.flush, coll)
            keys = [r[key] for r in rows]
            have: set = set()
            for i in range(0, len(keys), IN_BATCH):
                part = keys[i:i + IN_BATCH]
                expr = f"{key} in {_ids(part) if key == 'pos' else json.dumps(part, ensure_ascii=False)}"
                have.update(r[key] for r in self.call(self.c.query, coll, filter=expr,
                                                      output_fields=[key], limit=len(part)))
            missing = [r for r in rows if r[key] not in have]
            if not missing:
                return
            if attempt == 2:
                break
            self.insert_rows(missing, coll)
        raise BackendError(f"Milvus collection {coll} at {self.t.uri} lost {len(missing)} of "
                           f"{len(rows)} confirmed rows; nothing was committed, run the build again")

    def delete(self, expr: str, coll: str | None = None) -> None:
        self.call(self.c.delete, coll or self.name, filter=expr)


def build(corpus: str | Path, index_dir: str | Path, embedder: str | None = None,
          settings: ChunkSettings | None = None, ann: str = "auto", rebuild: bool = False,
          progress: bool = False, log: Callable[[str], None] | None = None,
          uri: str | None = None, token: str | None = None, collection: str | None = None,
          reuse_vectors: str | Path | None = None) -> BuildReport:
    """Build or incrementally update the Milvus-backed index of `corpus` described in `index_dir`."""
    t0 = time.perf_counter()
    index_dir = Path(index_dir)
    say = log or (lambda _m: None)
    with writer_lock(index_dir):          # the one writer lock, as for local indexes
        current = state.read_manifest(index_dir)
        old = None if rebuild else current
        target = connection.resolve(current, uri, token, collection)
        spec = embedder or (old or {}).get("embedder", {}).get("spec") or rag_settings.get().embedder \
            or DEFAULT_EMBEDDER
        settings = settings or (ChunkSettings(**old["chunker_settings"]) if old else ChunkSettings())
        if old and (spec != old["embedder"]["spec"] or settings.id() != old.get("chunker")):
            what = (f"embedder {old['embedder']['spec']!r}" if spec != old["embedder"]["spec"]
                    else f"chunker {old.get('chunker')!r}")
            raise IndexMismatch(f"index {index_dir} was built with {what}; to rebuild it with the "
                                f"requested settings run: rag build --rebuild --index {index_dir}")
        if old and (target.uri != old["milvus"]["uri"] or target.collection != old["milvus"]["alias"]):
            say(f"the index moves to {target.uri} / {target.collection}: building it anew there")
            old = None
        client = connection.client(target)
        docs = load_corpus(corpus)
        say(f"read {len(docs)} documents from {corpus}")
        old_files = (old or {}).get("files", {})
        new_files = {d.source: d.sha256 for d in docs}
        report = BuildReport(generation=(current or {}).get("generation", ""), files=len(docs), chunks=0)
        report.added = sorted(s for s in new_files if s not in old_files)
        report.changed = sorted(s for s in new_files if s in old_files and old_files[s] != new_files[s])
        report.removed = sorted(s for s in old_files if s not in new_files)
        if old is not None:
            connection.call(target, schema.check, client, old["milvus"]["collection"],
                            int(old["embedder"]["dim"]), target.uri)
            if not (report.added or report.changed or report.removed) \
                    and old.get("corpus") == str(Path(corpus).resolve()):
                _tidy(target, client, index_dir, old)
                report.chunks = old["counts"]["chunks"]
                report.up_to_date = True
                report.seconds = time.perf_counter() - t0
                return report
        emb = get_embedder(spec)
        gen_no = max(state.generation_number((current or {}).get("generation")),
                     _max_collection_gen(target, client)) + 1
        if old is None:
            manifest = _full(target, client, index_dir, corpus, docs, emb, spec, settings, ann, gen_no,
                             progress, say, reuse_vectors, report)
        else:
            manifest = _update(target, client, index_dir, corpus, docs, emb, settings, gen_no, old,
                               progress, say, reuse_vectors, report)
        manifest["build_seconds"] = round(time.perf_counter() - t0, 3)
        side = {"words.txt": "\n".join(manifest.pop("_words")), "terms.json": manifest.pop("_stats").to_json()}
        state.commit(index_dir, manifest, side)
        _crash_point("milvus-after-commit")
        _tidy(target, client, index_dir, manifest)
        report.generation = manifest["generation"]
        report.chunks = manifest["counts"]["chunks"]
        report.seconds = time.perf_counter() - t0
        return report


def _max_collection_gen(target, client) -> int:
    pat = re.compile(rf"{re.escape(target.collection)}_g(\d{{6,}})(_files)?")
    names = connection.call(target, client.list_collections)
    return max((int(m.group(1)) for n in names if (m := pat.fullmatch(n))), default=0)


def _tidy(target, client, index_dir: Path, manifest: dict) -> None:
    """Point the alias at the current collection; drop our collections that neither the
    current nor the previous generation names (what killed builds left); old local folders."""
    name, alias = manifest["milvus"]["collection"], manifest["milvus"]["alias"]
    prev = state.previous(index_dir, manifest["generation"])
    keep = {name}
    if prev and prev.get("milvus", {}).get("uri") == target.uri:
        keep.add(prev["milvus"]["collection"])
    with connection.WRITE_LOCK:
        aliases = connection.call(target, client.list_aliases).get("aliases", [])
        if alias in aliases:
            if connection.call(target, client.describe_alias, alias).get("collection_name") != name:
                connection.call(target, client.alter_alias, name, alias)
        else:
            connection.call(target, client.create_alias, name, alias)
        pat = re.compile(rf"({re.escape(alias)}_g\d{{6,}})(_files)?")
        for n in connection.call(target, client.list_collections):
            m = pat.fullmatch(n)
            if m and m.group(1) not in keep:
                connection.call(target, client.drop_collection, n)
    state.cleanup(index_dir, keep={manifest["generation"]} | ({prev["generation"]} if prev else set()))


def _reusable(reuse_vectors, emb, say) -> dict[str, np.ndarray]:
    """Vectors by text of another index built with the same embedder (migrating a local index
    to Milvus embeds nothing again)."""
    if not reuse_vectors:
        return {}
    if isinstance(reuse_vectors, (list, tuple)):      # several (e.g. shards embedded on GPU machines)
        out: dict[str, np.ndarray] = {}
        for one in reuse_vectors:
            out.update(_reusable(one, emb, say))
        return out
    from rag.errors import RagError
    from rag.index import load as load_any

    try:
        idx = load_any(reuse_vectors)
        built, chunks, vectors = idx.manifest["embedder"].get("id"), idx.store.iter_chunks, idx.dense.vectors
    except (RagError, AttributeError):
        built, chunks, vectors = _generation_files(Path(reuse_vectors))
    if not same_vectors(built, emb):
        say(f"not reusing vectors of {reuse_vectors}: built with another embedder")
        return {}
    pos, keys = [], []
    for p, c in chunks():
        pos.append(p)
        keys.append(_text_key(embed_text(c)))
    vecs = vectors(np.asarray(pos, dtype=np.int64)) if pos else []
    say(f"reusing vectors of {len(pos)} chunks from {reuse_vectors}")
    return dict(zip(keys, vecs))


def _decode(decode_field, name: str, value):
    try:
        return decode_field(name, value)
    except ValueError:        # an older store kept some lists as plain text
        return [value]


def _generation_files(index_dir: Path):
    """The current generation of a local index of any format that has `store.sqlite` and
    `vectors.npy` (an index this version can no longer open still gives its vectors)."""
    import sqlite3

    from rag.chunks.citation import CHUNK_FIELDS, decode_field

    try:
        gen = json.loads((index_dir / "CURRENT").read_text())["generation"]
        m = json.loads((index_dir / gen / "manifest.json").read_text(encoding="utf-8"))
        matrix = np.load(index_dir / gen / "vectors.npy", mmap_mode="r")
        con = sqlite3.connect(f"file:{index_dir / gen / 'store.sqlite'}?mode=ro", uri=True)
    except (OSError, ValueError, KeyError, sqlite3.Error):
        raise BackendError(f"--reuse-vectors {index_dir}: not an index whose vectors can be read") from None
    names = {f.name for f in CHUNK_FIELDS}
    cols = [r[1] for r in con.execute("PRAGMA table_info(chunks)") if r[1] in names or r[1] == "pos"]

    def chunks():
        for row in con.execute(f"SELECT {', '.join(chr(34) + c + chr(34) for c in cols)} FROM chunks ORDER BY pos"):
            d = dict(zip(cols, row))
            p = d.pop("pos")
            yield p, Chunk(**{k: _decode(decode_field, k, v) for k, v in d.items() if v is not None})

    return m["embedder"].get("id"), chunks, lambda ids: np.asarray(matrix[ids], dtype=np.float32)


def _embed(texts: list[str], emb, known: dict[str, np.ndarray], progress: bool, report) -> np.ndarray:
    keys = [_text_key(t) for t in texts]
    out = np.zeros((len(texts), emb.dim), dtype=np.float32)
    todo = [i for i, k in enumerate(keys) if k not in known]
    for i, k in enumerate(keys):
        if k in known:
            out[i] = known[k]
    if todo:
        out[todo] = emb.passages([texts[i] for i in todo], progress=progress)
    report.embedded += len(todo)
    report.reused += len(texts) - len(todo)
    return out


def _rows(chunks: list[Chunk], vecs: np.ndarray, tokens: list[list[str]], avgdl: float,
          first_pos: int) -> list[dict]:
    return [{"pos": first_pos + i, "id": c.id, "source": c.source, "cstart": int(c.start),
             "cend": int(c.end), "title": c.title or "", "author": c.author or "", "text": c.text,
             "record": _record(c), "vec": vecs[i].tolist(), "kw": doc_vector(tokens[i], avgdl)}
            for i, c in enumerate(chunks)]


def _manifest(corpus, docs, emb, spec: str, settings: ChunkSettings, gen_no: int, target, name: str,
              ann: str, next_pos: int, ranges: dict, retired: list, retired_files: list, stats: Stats,
              words: list[str], sample: dict) -> dict:
    n = stats.docs
    return {
        "format": state.FORMAT, "backend": "milvus", "generation": state.gen_name(gen_no),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "corpus": str(Path(corpus).resolve()),
        "embedder": {"spec": spec, "id": emb.id, "dim": emb.dim},
        "chunker": settings.id(), "chunker_settings": {"max_chars": settings.max_chars,
                                                       "min_chars": settings.min_chars},
        "backends": {"dense": "milvus", "sparse": "milvus-bm25-sparse"}, "ann": ann,
        "milvus": {"uri": target.uri, "alias": target.collection, "collection": name, "ann": ann,
                   "next_pos": next_pos, "ranges": ranges, "retired": retired,
                   "retired_files": retired_files, "sample": sample},
        "bm25": {"k1": 1.2, "b": 0.75, "avgdl": stats.avgdl, "tokenizer": "jieba-search+quoted",
                 "words": len(words)},
        "files": {d.source: d.sha256 for d in docs}, "encodings": {d.source: d.encoding for d in docs},
        "readers": {d.source: d.reader for d in docs if d.reader != "plaintext"},
        "counts": {"files": len(docs), "chunks": n, "vectors": n, "bm25_docs": n},
        "_words": words, "_stats": stats,
    }


def _sample(rows: list[dict], keep: dict | None = None) -> dict:
    out = dict(keep or {})
    step = max(1, len(rows) // SAMPLE)
    for r in rows[::step][:SAMPLE]:
        out[str(r["pos"])] = _vec_sum(np.asarray(r["vec"], dtype=np.float32))
    return dict(list(out.items())[-SAMPLE:])


def _full(target, client, index_dir, corpus, docs, emb, spec, settings, ann, gen_no, progress, say,
          reuse_vectors, report) -> dict:
    chunks = [c for d in docs for c in chunk_document(d, settings)]
    texts = [embed_text(c) for c in chunks]
    vecs = _embed(texts, emb, _reusable(reuse_vectors, emb, say), progress, report)
    words = quoted_terms(d.text for d in docs)
    tok = Tokenizer(words, fast=True)
    tokens = [tok(t) for t in texts]
    stats = Stats()
    stats.add(tokens)
    stats.freeze_avgdl(tokens)
    kind = schema.ann_kind(len(chunks), ann)
    name = f"{target.collection}_g{gen_no:06d}"
    w = _Writer(target, client, name)
    with connection.WRITE_LOCK:
        for coll in (name, schema.files_name(name)):       # a killed build of this number
            if connection.call(target, client.has_collection, coll):
                connection.call(target, client.drop_collection, coll)
        connection.call(target, schema.create, client, name, emb.dim, kind)
    say(f"inserting {len(chunks)} chunks into Milvus collection {name} at {target.uri}")
    rows = _rows(chunks, vecs, tokens, stats.avgdl, 0)
    w.insert_checked(rows, "pos", after_first=lambda: _crash_point("milvus-mid-insert"))
    w.insert_checked([p for d in docs for p in _file_parts(d, gen_no)], "key", coll=w.files)
    _crash_point("milvus-after-insert")
    ranges, at = {}, 0
    per_file: dict[str, int] = {}
    for c in chunks:
        per_file[c.source] = per_file.get(c.source, 0) + 1
    for d in docs:
        n = per_file.get(d.source, 0)
        ranges[d.source] = [at, at + n, gen_no]
        at += n
    if w.count(f"pos < {len(chunks)}") != len(chunks):
        raise BackendError(f"Milvus collection {name} does not hold the {len(chunks)} chunks written; "
                           f"nothing was committed, run the build again")
    return _manifest(corpus, docs, emb, spec, settings, gen_no, target, name, kind, len(chunks), ranges,
                     [], [], stats, words, _sample(rows))


def _update(target, client, index_dir, corpus, docs, emb, settings, gen_no, old, progress, say,
            reuse_vectors, report) -> dict:
    m = old["milvus"]
    name = m["collection"]
    w = _Writer(target, client, name)
    for coll in (name, w.files):
        connection.call(target, client.load_collection, coll)
    # 1. what killed builds left, and what the previous update retired
    w.delete(f"pos >= {int(m['next_pos'])}")
    w.delete(f"fgen > {state.generation_number(old['generation'])}", coll=w.files)
    now = time.time()
    still, still_files = [], []
    for a, b, *at in m.get("retired", []):
        if now - (at[0] if at else 0) >= RETIRE_GRACE_S:
            w.delete(f"pos >= {int(a)} and pos < {int(b)}")
        else:
            still.append([a, b, *at])
    for source, fgen, *at in m.get("retired_files", []):
        if now - (at[0] if at else 0) >= RETIRE_GRACE_S:
            w.delete(f"source == {_q(source)} and fgen == {int(fgen)}", coll=w.files)
        else:
            still_files.append([source, fgen, *at])
    # 2. the rows being replaced: their tokens leave the statistics, their vectors may be reused
    gone = report.changed + report.removed
    stats = Stats.from_json(state.read_side(index_dir, old, "terms.json"))
    words = [x for x in state.read_side(index_dir, old, "words.txt").split("\n") if x]
    known: dict[str, np.ndarray] = {}
    for s in gone:
        a, b, _ = m["ranges"][s]
        rows = []
        for i in range(a, b, IN_BATCH):
            part = list(range(i, min(b, i + IN_BATCH)))
            rows += w.call(client.query, name, filter=f"pos in {_ids(part)}",
                           output_fields=["pos", "text", "record", "vec", "kw"], limit=len(part))
        old_texts = [embed_text(row_chunk(r)) for r in rows]
        stats.remove_vectors(r["kw"] for r in rows)
        known.update((_text_key(t), np.asarray(r["vec"], dtype=np.float32)) for t, r in zip(old_texts, rows))
    known.update(_reusable(reuse_vectors, emb, say))
    # 3. new rows for added and changed files, at fresh positions
    fresh = set(report.added + report.changed)
    new_docs = [d for d in docs if d.source in fresh]
    words = sorted(set(words) | set(quoted_terms(d.text for d in new_docs)))
    tok = Tokenizer(words, fast=True)
    chunks = [c for d in new_docs for c in chunk_document(d, settings)]
    texts = [embed_text(c) for c in chunks]
    vecs = _embed(texts, emb, known, progress, report)
    tokens = [tok(t) for t in texts]
    stats.add(tokens)
    first = int(m["next_pos"])
    rows = _rows(chunks, vecs, tokens, stats.avgdl, first)
    say(f"updating Milvus collection {name}: +{len(chunks)} chunks, {len(gone)} files replaced or removed")
    w.insert_checked(rows, "pos", after_first=lambda: _crash_point("milvus-mid-insert"))
    w.insert_checked([p for d in new_docs for p in _file_parts(d, gen_no)], "key", coll=w.files)
    _crash_point("milvus-after-insert")
    ranges = {s: r for s, r in m["ranges"].items() if s not in gone}
    at = first
    per_file: dict[str, int] = {}
    for c in chunks:
        per_file[c.source] = per_file.get(c.source, 0) + 1
    for d in new_docs:
        n = per_file.get(d.source, 0)
        ranges[d.source] = [at, at + n, gen_no]
        at += n
    retired = still + [[a, b, now] for a, b in _merge([m["ranges"][s][:2] for s in gone])]
    retired_files = still_files + [[s, int(m["ranges"][s][2]), now] for s in gone]
    sample = {p: v for p, v in m.get("sample", {}).items()
              if not any(a <= int(p) < b for a, b, *_ in retired)}
    manifest = _manifest(corpus, docs, emb, old["embedder"]["spec"], settings, gen_no, target, name, m["ann"],
                         at, ranges, retired, retired_files, stats, words, _sample(rows, sample))
    live = w.count(snapshot_filter(manifest))
    if live != stats.docs:
        raise BackendError(f"Milvus collection {name} holds {live} live chunks, the update expects "
                           f"{stats.docs}; nothing was committed, rebuild with: rag build --rebuild")
    return manifest


def _merge(ranges: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for a, b in sorted(r for r in ranges if r[1] > r[0]):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out
