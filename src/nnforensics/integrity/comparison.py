"""compare(): re-synchronize the suspect, decide whether it is a copy, and explain the changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..graph import GroupSet, state_tensors
from ..permutation import groups_of, output_difference, resolve_inputs, unwrap
from ..resynchronization import check_same_architecture, resync
from ..utils.progress import info
from .evidence import MIN_UNITS, GroupEvidence, kept_positions, reidentify, restrict, similarity_score, tensor_evidence
from .kinds import changed_broadly, model_reading, read_all
from .statistics import change_stats, neuron_stats, noise_stats, pooled_noise_stats, quantization_grid

CHANGE_TOL = 1e-6  # relative L2 change below which a tensor counts as unchanged
#: Similarity (share of re-identified neurons) from which a suspect reads as derived.
#: Independently trained networks of one architecture score at most 0.044 and copies
#: noised up to Ω = 2 at least 0.71 in ``benchmarks/compare_calibration.py`` (docs/compare_calibration.md).
DERIVED_THRESHOLD = 0.15
#: Outside [UNRELATED_SURE, DERIVED_SURE] the verdict is given with high confidence.
DERIVED_SURE, UNRELATED_SURE = 0.3, 0.06


@dataclass
class CompareResult:
    """The outcome of :func:`compare`.

    Attributes:
        verdict: ``identical``, ``permuted``, ``derived`` or ``unrelated``.
        similarity: share (0-1) of the original's neurons re-identified in the suspect
            (see :mod:`nnforensics.integrity.evidence`); 1.0 for identical and permuted copies.
        confidence: ``high`` or ``low`` (similarity close to the threshold between
            unrelated networks and heavily modified copies).
        kind / kind_detail / kind_votes / kind_confidence: for ``derived``, the most likely
            modification (``noise``, ``quantization``, ``pruning``, ``scaling``,
            ``fine-tuning``), its numbers (e.g. "8 bits"), how many changed weight tensors
            read so ("5 of 6 changed weight tensors") and ``high``/``moderate``/``low``.
        layers: one row per floating-point tensor, in the model's order.
        groups: per permutation group: how it was matched and the share re-identified.
        output_difference: largest change of the outputs on the example inputs, relative to
            the original's largest output (after re-synchronization; 0 for a permuted copy).
        permuted_groups: groups whose units were found out of order (None when unrelated).
    """

    verdict: str
    similarity: float
    layers: list[dict[str, Any]]
    confidence: str = "high"
    kind: str | None = None
    kind_detail: str = ""
    kind_votes: str = ""
    kind_confidence: str | None = None
    kinds: dict[str, int] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    output_difference: float = 0.0
    permuted_groups: int | None = 0
    reidentified: int | None = 0
    units: int | None = 0
    basis: str = "neurons"
    restored: Any = None

    @property
    def changed_layers(self) -> list[str]:
        """Layers with a changed tensor, in the model's order."""
        return list(dict.fromkeys(row["layer"] for row in self.layers if row["changed"]))

    def summary(self) -> str:
        """The conclusion in one sentence (the first line every front end shows)."""
        share = f"{self.reidentified} of {self.units} neurons re-identified (similarity {self.similarity:.3f})"
        if self.basis == "tensors":
            share = (f"{self.reidentified} of {self.units} weight tensors correlate with the original's beyond "
                     f"chance (no permutation group of {MIN_UNITS} or more neurons to re-identify)")
        if self.verdict == "identical":
            return "identical: every tensor is bit-for-bit the original's"
        if self.verdict == "permuted":
            return (f"permuted: the original with the neurons of {self.permuted_groups} group(s) reordered; "
                    f"no weight changed: all {self.units} neurons are back in place, bit for bit (similarity 1.000)")
        if self.verdict == "unrelated":
            return (f"unrelated ({self.confidence} confidence): no correspondence beyond chance between the two "
                    f"networks; {share}; per-layer kinds of change do not apply")
        tensors = sum(1 for row in self.layers if row["changed"])
        return (f"derived ({self.confidence} confidence): a modified copy, most likely {self.kind} "
                f"({self.kind_detail}), read in {self.kind_votes} ({self.kind_confidence} agreement); {share}; "
                f"{tensors} tensor(s) of {len(self.changed_layers)} layer(s) changed")

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "summary": self.summary(), "similarity": self.similarity,
                "confidence": self.confidence, "kind": self.kind, "kind_detail": self.kind_detail,
                "kind_votes": self.kind_votes, "kind_confidence": self.kind_confidence, "kinds": self.kinds,
                "reidentified": self.reidentified, "units": self.units, "basis": self.basis,
                "changed_layers": self.changed_layers, "permuted_groups": self.permuted_groups,
                "output_difference": self.output_difference, "layers": self.layers, "groups": self.groups}


def _module(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def tensor_row(name: str, orig: torch.Tensor, sus: torch.Tensor, keep: dict[int, np.ndarray] | None,
               is_buffer: bool = False) -> dict[str, Any]:
    """Statistics of one tensor pair; those of the change use re-identified neurons only (``keep``).

    ``is_buffer``: the tensor is a buffer (e.g. BatchNorm's running statistics), which only
    forward passes in training mode change.
    """
    row: dict[str, Any] = {"layer": _module(name), "tensor": name, "is_weight": orig.dim() >= 2,
                           "is_buffer": is_buffer, **change_stats(orig, sus)}
    row["changed"] = row["rel_l2"] > CHANGE_TOL
    row["kind"] = None
    if not row["changed"]:
        return row
    o, s = restrict(orig, keep), restrict(sus, keep)
    row["kept_values"] = int(o.numel())
    row["changed_share"] = float((o != s).double().mean()) if o.numel() else 0.0
    if o.numel() > 1 and float(o.double().std()) > 0:
        row["omega_kept"] = float((s.double() - o.double()).std() / o.double().std())
    if not row["is_weight"]:
        row["changed_entries"] = torch.nonzero(orig.reshape(-1) != sus.reshape(-1)).reshape(-1)[:4096].tolist()
        return row
    row.update(neuron_stats(orig, sus, (keep or {}).get(0)))
    grid = quantization_grid(sus)
    if grid is not None and (quantization_grid(orig) or {"bits": 99})["bits"] > grid["bits"]:
        fmt = grid["granularity"] == "format"
        row.update(bits=grid["bits"], grid=grid["scheme"] if fmt else f"{grid['scheme']} per {grid['granularity']}",
                   quantization=grid["scheme"] if fmt else f"{grid['bits']} bits")
    if o.numel() and o.shape[0] >= 2:
        o2, s2 = o.reshape(o.shape[0], -1), s.reshape(o.shape[0], -1)
        row.update(rows=int(o2.shape[0]), cols=int(o2.shape[1]), **noise_stats(o2, s2))
    return row


def _group_rows(result_groups: list[dict[str, Any]], evidence: dict[str, GroupEvidence]) -> list[dict[str, Any]]:
    rows = []
    for g in result_groups:
        ev = evidence.get(g["name"])
        extra = {}
        if ev is not None:
            extra = {"reidentified": int(ev.matched.sum()), "counted": ev.counted,
                     "dimension": ev.dimension, "chance_max": float(ev.chance.max()) if len(ev.chance) else 0.0}
        rows.append({**g, **extra})
    return rows


def compare(
    original: Any,
    suspect: Any,
    example_inputs: torch.Tensor | tuple[torch.Tensor, ...] | None = None,
    group_set: GroupSet | None = None,
    method: str = "lap",
    quiet: bool = True,
) -> CompareResult:
    """Is ``suspect`` a copy of ``original``? Re-synchronize it and explain how they differ.

    Args:
        original, suspect: models of the same architecture (``nn.Module`` or loaded models).
        example_inputs: inputs for the graph analysis (default: from the metadata).
        group_set: precomputed groups of ``original``.
        method: re-synchronization method used to align the suspect (see ``nnf resync``);
            the evidence of a correspondence always comes from its own sequential pass.
        quiet: no progress bars or status lines.

    Returns:
        :class:`CompareResult`; ``summary()`` states the conclusion in one sentence.
    """
    orig_m, _ = unwrap(original)
    sus_m, _ = unwrap(suspect)
    check_same_architecture(orig_m, sus_m)
    o_tensors = {k: v.detach() for k, v in state_tensors(orig_m).items()}
    s_tensors = state_tensors(sus_m)
    floats = [k for k, v in o_tensors.items() if v.is_floating_point()]
    buffers = {name for name, _ in orig_m.named_buffers()}
    if all(torch.equal(o_tensors[k], s_tensors[k]) for k in o_tensors):
        rows = [tensor_row(k, o_tensors[k], o_tensors[k], None, k in buffers) for k in floats]
        return CompareResult("identical", 1.0, rows, reidentified=None, units=None, restored=sus_m)
    inputs = resolve_inputs(original, example_inputs)
    info("finding permutation groups ...", quiet)
    group_set = groups_of(original, inputs, group_set)
    result = resync(original, suspect, method=method, group_set=group_set, quiet=quiet)
    restored = state_tensors(result.model)
    info("collecting evidence (sequential passes, forward and backward) ...", quiet)
    passes = [resync(original, result.model, method="lap", group_set=group_set, capture=group_set.names(),
                     max_iter=0, center=True, reverse=reverse, quiet=quiet) for reverse in (False, True)]
    evidence = reidentify(group_set, passes[0].similarities, passes[1].similarities, o_tensors, restored)
    counted = [e for e in evidence.values() if e.counted]
    keep = kept_positions(group_set, evidence)
    rows = [tensor_row(k, o_tensors[k], restored[k], keep.get(k), k in buffers) for k in floats]
    _, out_diff = output_difference(orig_m, result.model, inputs)
    permuted = sum(not np.array_equal(m, np.arange(len(m))) for m in result.maps.values())
    res = CompareResult("derived", similarity_score(evidence), rows, groups=_group_rows(result.groups, evidence),
                        output_difference=out_diff, permuted_groups=permuted,
                        reidentified=sum(int(e.matched.sum()) for e in counted),
                        units=sum(len(e.matched) for e in counted), restored=result.model)
    if not any(r["changed"] for r in rows):
        res.verdict, res.similarity = "permuted" if permuted else "identical", 1.0
        res.reidentified = res.units = group_set.n_units  # every unit in place, bit for bit
        return res
    threshold = DERIVED_THRESHOLD
    if not counted:  # no group of MIN_UNITS units: judge tensor by tensor, with less certainty
        res.basis, threshold = "tensors", 0.5
        res.reidentified, res.units = tensor_evidence([(o_tensors[r["tensor"]], restored[r["tensor"]])
                                                       for r in rows if r["is_weight"]])
        res.similarity = res.reidentified / res.units if res.units else 0.0
    similarity = res.similarity
    res.confidence = "high" if res.basis == "neurons" and (similarity >= DERIVED_SURE or
                                                           similarity <= UNRELATED_SURE) else "low"
    if similarity < threshold:
        res.verdict, res.permuted_groups = "unrelated", None
        for row in rows:
            row["kind"] = None
        return res
    broad = [(restrict(o_tensors[r["tensor"]], keep.get(r["tensor"])), restrict(restored[r["tensor"]], keep.get(r["tensor"])))
             for r in rows if r["changed"] and not r["is_weight"] and not r["is_buffer"] and changed_broadly(r)]
    trained = read_all(rows, pooled_noise_stats(broad))
    reading = model_reading(rows, trained)
    res.kind, res.kind_detail, res.kinds = reading["kind"], reading["detail"], reading["kinds"]
    res.kind_votes = f"{reading['votes']} of {reading['voters']} changed weight tensors"
    res.kind_confidence = reading["confidence"]
    return res
