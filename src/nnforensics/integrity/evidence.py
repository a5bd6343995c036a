"""Which of the original's neurons have a counterpart in the suspect, beyond chance.

After re-synchronization the suspect's unit at position ``u`` is the best candidate for
the original's unit ``u``. Whether it *is* that unit is decided by an evidence pass of its
own, which the re-synchronization's refinement cannot inflate:

1. groups are visited in topological order, as in the paper's Algorithm 1, and each
   group's units are compared over the coupled parameters whose other axes are already
   aligned — never over parameters aligned later (joint optimisation over all groups,
   as Git Re-Basin does, makes even independently trained networks look alike). A
   second pass visits the groups in reverse order, so each is compared over the layers
   it feeds instead: the two passes read different parameters, and their chances are
   combined (Fisher) for units that both passes match alike (where they pick different
   units, the stronger pass alone counts, at twice its chance);
2. features are centred over the units (correlation, not cosine), so a component that
   every unit of a layer shares does not make all units look alike;
3. the similarity ``c`` of a matched pair is tested against the similarities of
   non-matching pairs of the same group: those set the centre ``mu`` and the spread,
   read as an effective dimension ``D`` (random directions in ``D`` dimensions have
   cosine spread ``1/sqrt(D)``). The chance that an unrelated unit comes this close is
   ``P(cos >= (c - mu) / (1 - mu))`` for a random direction in ``D`` dimensions; the
   two passes' chances are combined, times ``n`` candidates (Bonferroni); a unit is
   **re-identified** when that is below ``ALPHA`` and the pair are each other's best
   match (in one of the passes that chose it). A
   unit copied exactly (every coupled value bit-identical, not all zero) is re-identified
   whatever its group.

Groups of fewer than :data:`MIN_UNITS` units carry too little evidence and are left out
of the similarity.
"""

from __future__ import annotations

import math
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


def _tail(c: np.ndarray, dimension: float) -> np.ndarray:
    """P(cos >= c) for a uniformly random direction in ``dimension`` dimensions (c in [-1, 1])."""
    c = np.clip(c, -1.0, 1.0)
    upper = 0.5 * betainc((dimension - 1) / 2, 0.5, np.clip(1 - c**2, 0.0, 1.0))
    return np.where(c >= 0, upper, 1.0 - upper)


def unit_evidence(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Test each original unit's best match in a similarity matrix (rows: original units).

    Returns:
        ``(mapping, mutual, tail, dimension)``: ``mapping[u]`` is the suspect unit (column)
        assigned to ``u`` by linear assignment; ``mutual[u]`` whether the two are each
        other's best match; ``tail[u]`` the chance that an unrelated unit comes as close
        (one candidate; multiply by ``n`` for all of them); ``dimension`` the effective
        dimension of the features.
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
    tail = _tail((np.diag(aligned) - centre) / scale, dimension)
    idx = np.arange(n)
    mutual = (aligned.argmax(1) == idx) & (aligned.argmax(0) == idx)
    return mapping, mutual, tail, dimension


def _fisher(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Fisher's combination of two independent p-values: P(chi2 with 4 d.o.f. >= -2 ln(p q))."""
    half = -np.log(np.clip(p, 1e-300, 1.0)) - np.log(np.clip(q, 1e-300, 1.0))
    return np.minimum(1.0, np.exp(-half) * (1.0 + half))


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


def reidentify(group_set: GroupSet, forward: Mapping[str, np.ndarray], backward: Mapping[str, np.ndarray],
               orig: Mapping[str, torch.Tensor], rest: Mapping[str, torch.Tensor]) -> dict[str, GroupEvidence]:
    """Evidence per group from the two evidence passes.

    Args:
        group_set: the original's groups.
        forward, backward: per group, (n, n) similarities of the pass in topological order
            (each group over its own parameters: fan-in) and of the pass in reverse order
            (over the parameters of the layers it feeds: fan-out); rows: original units,
            columns: the re-synchronized suspect's units in its order. The two read disjoint
            parameters, so their chances combine as independent tests (Fisher).
        orig, rest: the original's and the re-synchronized suspect's tensors by name.
    """
    out = {}
    for group in group_set:
        if group.name not in forward or group.name not in backward:
            continue
        map_f, mutual_f, tail_f, dim_f = unit_evidence(forward[group.name])
        map_b, mutual_b, tail_b, dim_b = unit_evidence(backward[group.name])
        n = group.size
        exact = _exact_units(group, orig, rest)
        agree = map_f == map_b
        forward_wins = tail_f <= tail_b
        # Both passes pick the same unit: their chances combine. Otherwise the stronger
        # pass alone counts, at twice its chance (two tries).
        tail = np.where(agree, _fisher(tail_f, tail_b), 2 * np.minimum(tail_f, tail_b))
        mapping = np.where(agree | forward_wins, map_f, map_b)
        mutual = np.where(agree, mutual_f | mutual_b, np.where(forward_wins, mutual_f, mutual_b))
        chance = np.where(exact, 0.0, np.minimum(1.0, n * tail))
        matched = exact | (mutual & (chance < ALPHA))
        consistent = exact | (mapping == np.arange(n))
        out[group.name] = GroupEvidence(group.name, matched, consistent, chance,
                                        float(np.nanmin([dim_f, dim_b])) if n > 1 else float("nan"),
                                        n >= MIN_UNITS)
    return out


def similarity_score(evidence: Mapping[str, GroupEvidence]) -> float:
    """Share of re-identified units over the groups that are counted (0.0 when none is)."""
    counted = [e for e in evidence.values() if e.counted]
    total = sum(len(e.matched) for e in counted)
    return float(sum(int(e.matched.sum()) for e in counted) / total) if total else 0.0


def tensor_evidence(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[int, int]:
    """``(matched, total)``: weight tensors whose values correlate with the original's beyond chance.

    For networks with no permutation group of :data:`MIN_UNITS` units, whose neurons cannot
    be re-identified: Fisher's z of the Pearson correlation between the two tensors'
    values, one-sided, Bonferroni over the tensors, at :data:`ALPHA`.
    """
    from scipy.stats import norm

    total = matched = 0
    for orig, sus in pairs:
        o, s = orig.detach().double().reshape(-1).cpu(), sus.detach().double().reshape(-1).cpu()
        if o.numel() < 4 or float(o.std()) == 0 or float(s.std()) == 0:
            continue
        total += 1
        r = float(torch.corrcoef(torch.stack([o, s]))[0, 1])
        z = math.atanh(min(r, 1 - 1e-12)) * math.sqrt(o.numel() - 3)
        matched += int(norm.sf(z) * len(pairs) < ALPHA)
    return matched, total


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
