"""Re-synchronization: put a permuted (and perturbed) copy's neurons back in the original's order.

Groups are solved in topological order: once a group's input axes are aligned, the
comparison of its units is exact up to the perturbation. Methods:

* ``argmax`` — the paper's Algorithm 1: cosine similarity of the layer's own reshaped
  weights, argmax per original neuron (may map two neurons to one: reported as collisions).
* ``lap`` (default) — cosine similarity over every coupled parameter whose other axes are
  already aligned, solved as a linear assignment (always a permutation).
* ``weight-matching`` — Git Re-Basin coordinate descent over all groups on inner products.
* ``rank`` — the paper's rejected baseline: sort neurons by the sum of their weights.
"""

from __future__ import annotations

from .core import (
    METHODS,
    ResyncResult,
    check_same_architecture,
    resync,
    similarity_matrix,
    unambiguous_share,
)

__all__ = ["METHODS", "ResyncResult", "check_same_architecture", "resync", "similarity_matrix", "unambiguous_share"]
