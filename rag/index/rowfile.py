"""Rows of an on-disk .npy array read by `pread`, for the few rows a query needs.

Why not the memory map: a mapped page a query touched counts in the process's resident
memory until the kernel reclaims it. The exact rescoring of a query's candidates reads a
few hundred scattered vector rows, and over a few hundred queries that touched most pages
of every segment's vectors.npy (bench_scale, 300k chunks: 147 of 147 MB per segment
resident after 300 queries; at 1M chunks the query process grew past 3 GB). Read with
pread, the same pages stay in the OS page cache, shared and reclaimable, not in the
process; a page-cache read of a 1.5 KB row costs ~2 us. Bulk work (merges, exact search
of small segments) keeps using the memory map.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

BULK = 4096        # more rows than this: the caller's memory map is the better tool


class RowFile:
    """A 2-D (or 1-D) .npy file opened for positioned reads."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            self.offset = f.tell()
        if fortran:
            raise ValueError(f"{path}: Fortran-ordered arrays are not supported")
        self.path = path
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return int(self.shape[0])

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """The given rows, in the given order (runs of consecutive rows read at once)."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), *self.shape[1:]), dtype=self.dtype)
        if not len(idx):
            return out
        order = np.argsort(idx, kind="stable")
        s = idx[order]
        if s[0] < 0 or s[-1] >= self.shape[0]:
            raise IndexError(f"row out of range for {self.path} ({self.shape[0]} rows)")
        breaks = np.flatnonzero(np.diff(s) != 1) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [len(s)]])
        buf = np.empty((len(s), *self.shape[1:]), dtype=self.dtype)
        view = memoryview(buf.reshape(-1).view(np.uint8))
        rb = self.row_bytes
        for a, b in zip(starts.tolist(), ends.tolist()):
            self._read_into(view[a * rb:b * rb], self.offset + int(s[a]) * rb)
        out[order] = buf
        return out

    def slice(self, a: int, b: int) -> np.ndarray:
        """Rows [a, b)."""
        n = max(0, b - a)
        buf = np.empty((n, *self.shape[1:]), dtype=self.dtype)
        if n:
            self._read_into(memoryview(buf.reshape(-1).view(np.uint8)), self.offset + a * self.row_bytes)
        return buf

    def __getitem__(self, key):
        """a[i] and a[i:j] (contiguous) as a memory-mapped array would answer them."""
        if isinstance(key, slice):
            a, b, step = key.indices(len(self))
            if step != 1:
                raise IndexError("RowFile slices are contiguous")
            return self.slice(a, b)
        i = int(key)
        i = i + len(self) if i < 0 else i
        if not 0 <= i < len(self):
            raise IndexError(f"row {key} out of range for {self.path} ({len(self)} rows)")
        return self.slice(i, i + 1)[0]

    @property
    def nbytes(self) -> int:
        return len(self) * self.row_bytes

    def _read_into(self, view: memoryview, pos: int) -> None:
        done = 0
        while done < len(view):
            got = os.preadv(self._fd, [view[done:]], pos + done)
            if got <= 0:
                raise OSError(f"{self.path}: short read at byte {pos + done}")
            done += got

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
