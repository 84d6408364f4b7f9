"""Vectors a build has embedded but not yet committed, saved as it goes (`embed-cache/`).

Embedding is by far the slowest part of a build (~10 chunks/s for e5-small on 2 cores:
a million chunks is more than a day). Every batch is appended as its own file, written to a
temporary name, flushed and renamed, so a build killed at any point loses at most the batch
in flight; the next build loads the cache and never embeds a finished chunk again. Keys are
SHA-1 digests of the embedded text; the cache names the embedder that made it and is
dropped when another one builds, and cleared once a commit holds the vectors.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from rag.index.layout import _fsync_dir

DIR = "embed-cache"


class EmbedCache:
    def __init__(self, index_dir: Path, embedder_id: str) -> None:
        self.dir = Path(index_dir) / DIR
        self.embedder_id = embedder_id

    def load(self) -> tuple[dict[bytes, int], np.ndarray | None]:
        """(key -> row, rows) of every complete batch made by this embedder."""
        meta = self.dir / "embedder.json"
        try:
            if json.loads(meta.read_text(encoding="utf-8")).get("id") != self.embedder_id:
                self.clear()
                return {}, None
        except (OSError, ValueError):
            return {}, None
        keys: dict[bytes, int] = {}
        mats = []
        n = 0
        for p in sorted(self.dir.glob("batch-*.npz")):
            try:
                with np.load(p) as z:
                    k, v = z["keys"], z["vectors"]
            except Exception:        # a torn batch (should not happen: renamed when complete)
                continue
            for i, key in enumerate(k.tolist()):
                # numpy "S20" drops trailing NUL bytes: a digest ending in 0x00 (1 in 256)
                # came back shorter and was embedded again on resume
                keys.setdefault(key.ljust(20, b"\0"), n + i)
            mats.append(v)
            n += len(v)
        return keys, (np.vstack(mats) if mats else None)

    def append(self, keys: list[bytes], vectors: np.ndarray) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "embedder.json"
        if not meta.exists():
            meta.write_text(json.dumps({"id": self.embedder_id}), encoding="utf-8")
        if getattr(self, "_last", None) is None:       # listed once, not at every batch
            self._last = max((int(p.stem.split("-")[1]) for p in self.dir.glob("batch-*.npz")), default=0)
        self._last += 1
        name = f"batch-{self._last:08d}.npz"
        tmp = self.dir / f".tmp-{name}"
        with open(tmp, "wb") as f:
            np.savez(f, keys=np.asarray(keys, dtype="S20"), vectors=np.asarray(vectors, dtype=np.float32))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / name)
        _fsync_dir(self.dir)

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
