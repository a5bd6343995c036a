"""Is the suspect a copy of the original? Re-synchronize, then compare tensor by tensor.

Verdicts (:func:`compare`):

* ``identical`` — every tensor is bit-for-bit the original's;
* ``permuted`` — the same weights once neurons are put back in order;
* ``derived`` — a modified copy: enough of the original's neurons are re-identified in
  the suspect (:mod:`.evidence`), and each changed tensor gets the most likely kind of
  modification (:mod:`.kinds`: pruning, quantization with its bit width, scaling, noise
  or fine-tuning), with how sure the reading is;
* ``unrelated`` — no correspondence beyond chance between the two networks' neurons
  (per-layer kinds of change then do not apply and are not given).
"""

from .comparison import CHANGE_TOL, DERIVED_THRESHOLD, CompareResult, compare
from .evidence import GroupEvidence, reidentify, similarity_score
from .statistics import change_stats, neuron_stats, noise_stats, quantization_grid

__all__ = [
    "CHANGE_TOL",
    "DERIVED_THRESHOLD",
    "CompareResult",
    "GroupEvidence",
    "change_stats",
    "compare",
    "neuron_stats",
    "noise_stats",
    "quantization_grid",
    "reidentify",
    "similarity_score",
]
