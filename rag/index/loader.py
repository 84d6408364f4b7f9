"""Open the current commit of an index for searching: verified, every segment memory-mapped.

Opening reads the commit point, each segment's small parts (BM25 vocabulary, IVF centroids,
deleted rows) and maps the rest; vectors, postings and stored texts are paged in as queries
touch them, so a process serving a million chunks holds a fraction of the index in memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.chunks import ChunkSettings
from rag.embed import get_embedder
from rag.errors import IndexDamaged, IndexMismatch, RagError
from rag.index.builder import _mismatch, _read_words
from rag.index.layout import _damaged, default_index_dir
from rag.index.manifest import verify
from rag.index.segment import Segment, open_segment
from rag.index.sparse import Tokenizer
from rag.index.sparse.postings import CorpusBM25
from rag.index.views import LiveMap, MultiDense, SegmentedStore


@dataclass
class Index:
    """One commit, opened: immutable, so everything cached on it is valid for its life."""
    folder: Path
    generation: str
    manifest: dict
    store: SegmentedStore
    dense: MultiDense
    sparse: CorpusBM25
    tokenizer: Tokenizer
    cache: dict = field(default_factory=dict)   # per-generation caches (citation postings, texts)
    segments: list[Segment] = field(default_factory=list)

    @property
    def size(self) -> int:
        return int(self.manifest["counts"]["chunks"])

    def cite_postings(self):
        """The citation postings stored in the segments (memory-mapped), files no longer in
        the commit masked; several segments are searched as one (rag.index.ngrams.MultiNgram).
        Opened by load()'s warm-up, when it ran."""
        ng = self.cache.get("_cite")
        return ng if ng is not None else self._open_cite()

    def warm_up(self) -> None:
        """Open the citation postings, page in their small arrays (bigram keys and offsets,
        vocabulary, file starts) and load OpenCC's table, with one lookup through them: the
        first citation lookup after a start cost 46 ms against a median of 4 ms at 100k
        chunks, 53-61 against ~20 ms at 1M (bench_scale), nearly all of it these first
        touches. Run in load() itself (~60 ms of the open at 1M chunks): in a background
        thread it raced the first lookup for the GIL (first lookup 124-185 ms at 1M) and a
        process ending inside OpenCC's constructor aborted."""
        from rag.index.ngrams import _opencc, normalize

        try:
            ng = self._open_cite()
            parts = getattr(ng, "parts", [ng])
            for p in parts:
                for a in ("keys", "starts", "vocab", "file_starts"):
                    arr = getattr(p, a, None)
                    if arr is not None and len(arr):
                        np.add.reduce(np.asarray(arr[::256]), dtype=np.float64)
            _opencc()
            q = normalize("引用定位预热检索")
            ng.candidates(ng.quote_ids(q))
            self.cache["_cite"] = ng
        except Exception:        # a warm-up never fails a load: the lookup opens them itself
            pass

    def _open_cite(self):
        from rag.index.ngrams import MultiNgram

        parts = []
        for seg in self.segments:
            ng = seg.cite()
            live = np.asarray([self.store.file_segment.get(s) == seg.name for s in ng.sources], dtype=bool)
            ng.live = None if live.all() else live
            if live.any():
                parts.append(ng)
        if len(parts) == 1:
            return parts[0]
        return MultiNgram(parts)


def load(index_dir: str | Path | None = None, embedder: str | None = None,
         settings: ChunkSettings | None = None, warm: bool = True) -> Index:
    """Load and verify the current commit; refuse an index built differently. `warm`:
    ready the citation postings before returning (Index.warm_up)."""
    index_dir = Path(index_dir) if index_dir else default_index_dir()
    manifest = verify(index_dir)
    what = _mismatch(manifest, get_embedder(embedder) if embedder else None, settings)
    if what:
        raise IndexMismatch(f"index {index_dir} was built with {what}, not the one requested; rebuild it with: "
                            f"rag build --rebuild --index {index_dir}" + (f" --embedder {embedder}" if embedder else ""))
    gen = manifest["generation"]
    fix = f"rebuild it with: rag build --rebuild --index {index_dir}"
    segments: list[Segment] = []
    dead: list[np.ndarray] = []
    part = f"{gen}/words.txt"
    try:
        words = _read_words(index_dir / gen / "words.txt")
        for info in manifest["segments"]:
            part = f"segments/{info['name']}"
            segments.append(open_segment(index_dir, info))
            rel = info.get("deleted")
            part = rel or part
            dead.append(np.load(index_dir / rel) if rel else np.zeros(0, dtype=np.int64))
            if segments[-1].store.extent() != int(info["rows"]):
                raise IndexDamaged(f"index {index_dir} is damaged: segments/{info['name']}/store.sqlite has "
                                   f"{segments[-1].store.extent()} chunks, the commit says {info['rows']}; {fix}")
    except RagError:
        raise
    except Exception as e:
        raise _damaged(index_dir, f"{part} cannot be opened ({type(e).__name__})") from None
    live = LiveMap([s.rows for s in segments], dead)
    store = SegmentedStore(segments, live, manifest["file_segments"], manifest["files"], manifest.get("encodings", {}))
    dense = MultiDense(segments, live)
    sparse = CorpusBM25([s.postings for s in segments], live)
    c = manifest["counts"]
    if not (live.size == c["chunks"] == dense.ntotal == sparse.ntotal):
        raise IndexDamaged(f"index {index_dir} is damaged: store {live.size}, vectors {dense.ntotal}, "
                           f"bm25 {sparse.ntotal} disagree with the commit's {c['chunks']}; {fix}")
    idx = Index(index_dir, gen, manifest, store, dense, sparse, Tokenizer(list(words)), segments=segments)
    if warm:
        idx.warm_up()
    return idx
