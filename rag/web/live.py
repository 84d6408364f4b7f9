"""The index a long-running process (the web app) serves, reloaded when a build switches it.

`LiveIndex.get()` costs one read of the small CURRENT file per request. When a build
(`rag build`, or the app's own re-indexing) has switched CURRENT to a new generation, the
first request to notice loads it while concurrent requests keep being answered from the
snapshot they already have; a snapshot is immutable, so a request never sees a mix of two
generations. A generation that fails to load is logged and retried after a pause, and the
old snapshot keeps serving meanwhile.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rag.errors import RagError
from rag.index import Index, load, read_current
from rag.search import Searcher

RETRY_SECONDS = 10.0


def citer_class():
    """`rag.cite.Citer`, or None while citation lookup is not available in this install."""
    try:
        from rag.cite import Citer
    except ImportError:
        return None
    return Citer


@dataclass(frozen=True)
class Snapshot:
    index: Index
    searcher: Searcher
    citer: object | None
    loaded_at: float = field(default_factory=time.time)

    @property
    def generation(self) -> str:
        return self.index.generation

    @property
    def manifest(self) -> dict:
        return self.index.manifest


class LiveIndex:
    def __init__(self, index_dir: str | Path, log: Callable[[str], None] | None = None,
                 warm: bool = True) -> None:
        self.index_dir = Path(index_dir)
        self.log = log or (lambda _m: None)
        self.warm = warm
        self._snap: Snapshot | None = None
        self._lock = threading.Lock()          # one loader at a time
        self._failed: tuple[str, float] | None = None

    # ---- public
    def get(self, wait: bool = False) -> Snapshot:
        """The snapshot of the current generation, loading it if a build switched it. While
        another thread loads it, the previous snapshot is returned (unless `wait`)."""
        snap = self._snap
        try:
            gen = read_current(self.index_dir)
        except RagError:
            if snap is not None:           # CURRENT being damaged is not a reason to stop serving
                return snap
            raise
        if snap is not None and (gen is None or snap.generation == gen):
            return snap
        if gen is None:
            raise RagError(f"no index in {self.index_dir} yet; build it with: "
                           f"rag build --index {self.index_dir}")
        if snap is not None and self._failed and self._failed[0] == gen \
                and time.monotonic() - self._failed[1] < RETRY_SECONDS:
            return snap
        # Someone else loading: keep answering from the old snapshot rather than queueing.
        if not self._lock.acquire(blocking=wait or snap is None):
            return snap  # type: ignore[return-value]
        try:
            cur = self._snap
            try:
                if cur is not None and cur.generation == read_current(self.index_dir):
                    return cur
                new = self._load()
            except Exception as e:  # noqa: BLE001 - whatever broke, the old snapshot still serves
                self._failed = (gen, time.monotonic())
                if cur is None:
                    raise
                self.log(f"warning: could not load {gen} ({e}); still serving {cur.generation}")
                return cur
            self._failed = None
            self._snap = new
            if cur is not None:
                self.log(f"index switched from {cur.generation} to {new.generation}")
            return new
        finally:
            self._lock.release()

    def reload(self) -> Snapshot:
        """Load the current generation now (after this process built it itself)."""
        self._failed = None
        return self.get(wait=True)

    @property
    def loaded(self) -> Snapshot | None:
        return self._snap

    # ---- internals
    def _load(self) -> Snapshot:
        t0 = time.perf_counter()
        index = load(self.index_dir)
        searcher = Searcher(index)
        cls = citer_class()
        citer = cls(index, searcher) if cls is not None else None
        if self.warm:
            try:
                searcher.search("预热 warm-up", k=1)
                if citer is not None and hasattr(citer, "warm"):
                    citer.warm()
            except RagError:
                pass
        self.log(f"loaded {index.generation}: {index.size} chunks in {time.perf_counter() - t0:.1f}s")
        return Snapshot(index, searcher, citer)
