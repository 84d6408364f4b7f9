"""Open the current generation of an index for searching: verified, memory-mapped."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rag.chunks import ChunkSettings
from rag.embed import get_embedder
from rag.errors import IndexDamaged, IndexMismatch, RagError
from rag.index import store as store_mod
from rag.index.builder import _mismatch
from rag.index.dense import BACKENDS, DenseIndex
from rag.index.layout import _damaged, default_index_dir
from rag.index.manifest import backends_of, verify
from rag.index.sparse import BM25Backend, BM25Index, Tokenizer


@dataclass
class Index:
    """One generation, opened: immutable, so everything cached on it is valid for its life."""
    folder: Path
    generation: str
    manifest: dict
    store: store_mod.Store
    dense: DenseIndex
    sparse: BM25Index
    tokenizer: Tokenizer
    cache: dict = field(default_factory=dict)   # per-generation caches (citation postings, texts)

    @property
    def size(self) -> int:
        return int(self.manifest["counts"]["chunks"])


def load(index_dir: str | Path | None = None, embedder: str | None = None,
         settings: ChunkSettings | None = None) -> Index:
    """Load and verify the current generation; refuse an index built differently."""
    index_dir = Path(index_dir) if index_dir else default_index_dir()
    manifest = verify(index_dir)
    what = _mismatch(manifest, get_embedder(embedder) if embedder else None, settings)
    if what:
        raise IndexMismatch(f"index {index_dir} was built with {what}, not the one requested; rebuild it with: "
                            f"rag build --rebuild --index {index_dir}" + (f" --embedder {embedder}" if embedder else ""))
    gen_dir = index_dir / manifest["generation"]
    fix = f"rebuild it with: rag build --rebuild --index {index_dir}"
    kinds = backends_of(manifest)
    part = f"the {kinds['dense']} vectors"
    try:
        dense = BACKENDS.get(kinds["dense"]).open(gen_dir, manifest.get("dense") or {})
        part = "bm25/"
        sparse = BM25Backend().open(gen_dir)
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
    if not (n == c["chunks"] == dense.ntotal == sparse.ntotal):
        raise IndexDamaged(f"index {index_dir} is damaged: store {n}, vectors {dense.ntotal}, "
                           f"bm25 {sparse.ntotal} disagree; {fix}")
    return Index(index_dir, manifest["generation"], manifest, st, dense, sparse,
                 Tokenizer([w for w in words if w]))
