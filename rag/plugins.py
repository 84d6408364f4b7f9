"""Registries for the plug-in points: readers (by suffix) and index backends (by name).

Built-in plug-ins register themselves on import; third-party packages add theirs through
entry points (`rag.readers`, `rag.backends`), each pointing at a zero-argument callable
that returns the plug-in (or at the plug-in object itself). Entry points are read once,
on the first lookup, so `import rag` stays cheap.
"""
from __future__ import annotations

import sys
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, group: str, what: str) -> None:
        self.group, self.what = group, what
        self._items: dict[str, T | Callable[[], T]] = {}
        self._loaded = False

    def register(self, name: str, item: T | Callable[[], T]) -> None:
        """Add a plug-in (or a factory returning it, called on first use) under `name`."""
        self._items[name] = item

    def _load_entry_points(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            if ep.name in self._items:
                continue
            try:
                self._items[ep.name] = ep.load()
            except Exception as e:  # a broken third-party plug-in must not break the product
                print(f"warning: {self.what} plug-in {ep.name!r} ({ep.value}) failed to load: "
                      f"{type(e).__name__}: {e}", file=sys.stderr)

    def get(self, name: str) -> T:
        self._load_entry_points()
        item = self._items.get(name)
        if item is None:
            from rag.errors import BadInput

            raise BadInput(f"unknown {self.what} {name!r}: use one of {', '.join(sorted(self._items))}")
        if callable(item) and not hasattr(item, "__rag_plugin__"):
            item = item()
            self._items[name] = item
        return item  # type: ignore[return-value]

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self.get(name)
