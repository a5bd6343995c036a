"""A vectorised union-find over integer ids (numpy), with id 0 reserved for "fixed"."""

from __future__ import annotations

import numpy as np


class UnionFind:
    """Disjoint sets over ``0..n-1``; the smaller id becomes the root (so 0 stays root of "fixed")."""

    def __init__(self) -> None:
        self.parent = np.zeros(1, dtype=np.int64)  # id 0: the fixed set

    def __len__(self) -> int:
        return len(self.parent)

    def add(self, count: int) -> int:
        """Allocate ``count`` new singleton ids; returns the first."""
        start = len(self.parent)
        self.parent = np.concatenate([self.parent, np.arange(start, start + count, dtype=np.int64)])
        return start

    def find(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        roots = self.parent[ids]
        while True:
            nxt = self.parent[roots]
            if np.array_equal(nxt, roots):
                return roots
            roots = nxt

    def compress(self) -> None:
        """Point every id at its root."""
        while True:
            nxt = self.parent[self.parent]
            if np.array_equal(nxt, self.parent):
                return
            self.parent = nxt

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        """Merge the sets of ``a[i]`` and ``b[i]`` for every i."""
        a = np.asarray(a, dtype=np.int64).ravel()
        b = np.asarray(b, dtype=np.int64).ravel()
        while a.size:
            ra, rb = self.find(a), self.find(b)
            keep = ra != rb
            if not keep.any():
                return
            ra, rb = ra[keep], rb[keep]
            lo, hi = np.minimum(ra, rb), np.maximum(ra, rb)
            # Conflicting writes to one root keep only one; the loop repeats until all are merged.
            self.parent[hi] = lo
            a, b = lo, hi

    def fix(self, ids: np.ndarray) -> None:
        """Merge ``ids`` into the fixed set (id 0)."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size:
            self.union(ids, np.zeros_like(ids))
