"""Which of the original's neurons have a counterpart in the suspect, beyond chance.

After re-synchronization the suspect's unit at position ``u`` is the best candidate for
the original's unit ``u``. Whether it *is* that unit is decided by an evidence pass of its
own, which the re-synchronization's refinement cannot inflate:

1. groups are visited in topological order, as in the paper's Algorithm 1, and each
   group's units are compared over the coupled parameters whose other axes are already
   aligned — never over parameters aligned later (joint optimisation over all groups,
   as Git Re-Basin does, makes even independently trained networks look alike);
2. features are centred over the units (correlation, not cosine), so a component that
   every unit of a layer shares does not make all units look alike;
3. the similarity ``c`` of a matched pair is tested against the similarities of
   non-matching pairs of the same group: those set the centre ``mu`` and the spread,
   read as an effective dimension ``D`` (random directions in ``D`` dimensions have
   cosine spread ``1/sqrt(D)``). The chance that an unrelated unit comes this close is
   ``P(cos >= (c - mu) / (1 - mu))`` for a random direction in ``D`` dimensions,
   times ``n`` candidates (Bonferroni); a unit is **re-identified** when that is below
   ``ALPHA`` and the pair are each other's best match. A unit copied exactly (every
   coupled value bit-identical, not all zero) is re-identified whatever its group.

Groups of fewer than :data:`MIN_UNITS` units carry too little evidence and are left out
of the similarity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.special import betainc

from ..graph import GroupSet, PermutationGroup

ALPHA = 0.01  # chance, per unit, that an unrelated unit is taken for a copy (before Bonferroni)
MIN_UNITS = 3


@dataclass
class GroupEvidence:
    """Evidence for one group; arrays are indexed by the original's unit position.

    Attributes:
        matched: (n,) bool — the suspect's unit at this position is re-identified.
        consistent: (n,) bool — the evidence pass puts the same suspect unit here as the
            re-synchronization did (units where they disagree are left out of the
            per-tensor statistics).
        chance: (n,) float — Bonferroni-corrected chance of so close a match by accident.
        dimension: effective dimension of the group's features.
        counted: whether the group enters the similarity (at least MIN_UNITS units).
    """

    name: str
    matched: np.ndarray
    consistent: np.ndarray
    chance: np.ndarray
    dimension: float
    counted: bool

    @property
    def share(self) -> float:
        return float(self.matched.mean()) if len(self.matched) else 1.0


def _tail(c: np.ndarray, dimension: float) -> np.ndarray:
    """P(cos >= c) for a uniformly random direction in ``dimension`` dimensions (c in [-1, 1])."""
    c = np.clip(c, -1.0, 1.0)
    upper = 0.5 * betainc((dimension - 1) / 2, 0.5, np.clip(1 - c**2, 0.0, 1.0))
    return np.where(c >= 0, upper, 1.0 - upper)


def unit_evidence(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Test each original unit's best match in a similarity matrix (rows: original units).

    Returns:
        ``(mapping, matched, chance, dimension)``: ``mapping[u]`` is the suspect unit
        (column) assigned to ``u`` by linear assignment; ``matched[u]`` whether that match is
        mutual-best and beyond chance; ``chance[u]`` the Bonferroni-corrected chance.
    """
    n = len(sim)
    rows, cols = linear_sum_assignment(sim, maximize=True)
    mapping = np.empty(n, dtype=np.int64)
    mapping[rows] = cols
    aligned = sim[:, mapping]
    if n < 2:
        return mapping, np.ones(n, dtype=bool), np.zeros(n), float("nan")
    off = aligned[~np.eye(n, dtype=bool)]
    centre = float(np.median(off))
    scale = max(1.0 - centre, 1e-12)
    spread_values = (off - centre) / scale
    spread = 1.4826 * float(np.median(np.abs(spread_values - np.median(spread_values))))
    if spread <= 0:
        spread = float(spread_values.std())
    dimension = max(2.0, 1.0 / max(spread, 1e-6) ** 2)
    diag = np.diag(aligned)
    chance = np.minimum(1.0, n * _tail((diag - centre) / scale, dimension))
    idx = np.arange(n)
    mutual = (aligned.argmax(1) == idx) & (aligned.argmax(0) == idx)
    return mapping, mutual & (chance < ALPHA), chance, dimension


def _exact_units(group: PermutationGroup, orig: Mapping[str, torch.Tensor],
                 rest: Mapping[str, torch.Tensor]) -> np.ndarray:
    """(n,) bool: every coupled value of the unit is bit-identical in both models and not all zero."""
    same = np.ones(group.size, dtype=bool)
    nonzero = np.zeros(group.size, dtype=bool)
    for m in group.members:
        flat = torch.from_numpy(m.index.reshape(-1))
        a = orig[m.name].detach().index_select(m.axis, flat).movedim(m.axis, 0).reshape(group.size, -1)
        b = rest[m.name].detach().index_select(m.axis, flat).movedim(m.axis, 0).reshape(group.size, -1)
        same &= (a == b).all(1).cpu().numpy()
        nonzero |= (a != 0).any(1).cpu().numpy()
    return same & nonzero


def reidentify(group_set: GroupSet, similarities: Mapping[str, np.ndarray],
               orig: Mapping[str, torch.Tensor], rest: Mapping[str, torch.Tensor]) -> dict[str, GroupEvidence]:
    """Evidence per group from the evidence pass's similarity matrices.

    Args:
        group_set: the original's groups.
        similarities: per group, (n, n) similarities of the evidence pass (rows: original
            units; columns: the re-synchronized suspect's units in its order).
        orig, rest: the original's and the re-synchronized suspect's tensors by name.
    """
    out = {}
    for group in group_set:
        sim = similarities.get(group.name)
        if sim is None:
            continue
        mapping, matched, chance, dimension = unit_evidence(sim)
        exact = _exact_units(group, orig, rest)
        matched = matched | exact
        chance = np.where(exact, 0.0, chance)
        consistent = (mapping == np.arange(group.size)) | exact
        out[group.name] = GroupEvidence(group.name, matched, consistent, chance, dimension,
                                        group.size >= MIN_UNITS)
    return out


def similarity_score(evidence: Mapping[str, GroupEvidence]) -> float:
    """Share of re-identified units over the groups that are counted (1.0 when none is)."""
    counted = [e for e in evidence.values() if e.counted]
    total = sum(len(e.matched) for e in counted)
    return float(sum(int(e.matched.sum()) for e in counted) / total) if total else 1.0


def kept_positions(group_set: GroupSet, evidence: Mapping[str, GroupEvidence]) -> dict[str, dict[int, np.ndarray]]:
    """Per tensor and axis, the positions whose units are re-identified and consistently placed.

    Positions of a unit that the evidence does not support are dropped so that a few
    mismatched neurons (whose "change" is the difference between two different
    neurons) do not pollute the statistics of the change. Axes of no group keep everything.
    """
    keep: dict[str, dict[int, np.ndarray]] = {}
    for group in group_set:
        ev = evidence.get(group.name)
        if ev is None:
            continue
        good = ev.matched & ev.consistent
        if good.all():
            continue
        for m in group.members:
            size = group_set.shapes[m.name][m.axis]
            mask = keep.setdefault(m.name, {}).setdefault(m.axis, np.ones(size, dtype=bool))
            mask[m.index[~good].reshape(-1)] = False
    return keep


def restrict(tensor: torch.Tensor, masks: Mapping[int, np.ndarray] | None) -> torch.Tensor:
    """``tensor`` with the positions dropped by ``masks`` (axis -> keep) removed."""
    out = tensor.detach()
    for axis, mask in (masks or {}).items():
        out = out.index_select(axis, torch.from_numpy(np.flatnonzero(mask)).to(out.device))
    return out
