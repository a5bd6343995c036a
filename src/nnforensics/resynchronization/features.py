"""Features of a group's units and the similarity of two models' units, for re-synchronization.

A unit's features are its slices of every coupled parameter (the layer's own weights,
bias, normalisation statistics, the next layers' inputs...), each member scaled to unit
RMS; ``eligible`` keeps the members whose other axes are already aligned.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..graph import Member, PermutationGroup


def unit_rows(tensor: torch.Tensor, member: Member, index: np.ndarray) -> torch.Tensor:
    """(n, k * rest) float64 features of units at ``index`` (n, k) along ``member.axis``."""
    flat = torch.from_numpy(index.reshape(-1))
    picked = tensor.detach().index_select(member.axis, flat.to(tensor.device)).movedim(member.axis, 0)
    return picked.reshape(index.shape[0], -1).double().cpu()


def eligible(group: PermutationGroup, members: list[Member], owners: dict, solved: set[str],
              shapes: dict[str, tuple[int, ...]]) -> list[Member]:
    """Members whose other axes are already aligned (or never permuted)."""
    out = []
    for m in members:
        ok = True
        for axis, size in enumerate(shapes[m.name]):
            if axis == m.axis or size == 1:
                continue
            if any(o != group.name and o not in solved for o in owners.get((m.name, axis), [])):
                ok = False
                break
        if ok:
            out.append(m)
    return out or members


def anchor(group: PermutationGroup, members: list[Member], shapes) -> list[Member]:
    """The layer's own weight rows (the paper's Algorithm 1 uses only these)."""
    for m in members:
        if m.axis == 0 and len(shapes[m.name]) >= 2 and m.name.rsplit(".", 1)[0] == group.layer:
            return [m]
    for m in members:
        if len(shapes[m.name]) >= 2:
            return [m]
    return members[:1]


def features(tensors, members: list[Member], index_of, cosine: bool, center: bool = False) -> torch.Tensor:
    """Concatenated unit features; each member scaled to unit RMS so none dominates.

    ``center`` subtracts each member's mean over the units first (correlation instead of
    cosine): a component every unit shares then no longer makes all units look alike.
    """
    parts = []
    for m in members:
        rows = unit_rows(tensors[m.name], m, index_of(m))
        if center:
            rows = rows - rows.mean(0, keepdim=True)
        if cosine:
            rms = rows.pow(2).mean().sqrt()
            rows = rows / rms if rms > 0 else rows
        parts.append(rows)
    feats = torch.cat(parts, 1)
    if cosine:
        feats = feats / feats.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return feats


def similarity(orig, rest, members: list[Member], cosine: bool, index_o=None, index_r=None,
                center: bool = False) -> np.ndarray:
    index_o = index_o or (lambda m: m.index)
    index_r = index_r or index_o
    fo = features(orig, members, index_o, cosine, center)
    fr = features(rest, members, index_r, cosine, center)
    return (fo @ fr.T).numpy()


def block_similarity(group: PermutationGroup, orig, rest, members_ok, cosine: bool, center: bool = False) -> np.ndarray:
    """Similarity of blocks: segments matched inside each pair of blocks (nested assignment)."""
    n = group.size
    total = np.zeros((n, n))
    weight = 0.0
    fixed_members: list[tuple[Member, int]] = []
    for s, seg in enumerate(group.segments):
        members = [m for m in seg.members if (m.name, m.axis) in members_ok]
        if not members:
            continue
        if not seg.permutable or seg.n_units == 1:
            fixed_members += [(m, s) for m in members]
            continue
        feats_o = [features(orig, members, lambda m, b=b: m.index[b], cosine, center) for b in range(n)]
        feats_r = [features(rest, members, lambda m, b=b: m.index[b], cosine, center) for b in range(n)]
        for a in range(n):
            for b in range(n):
                sim = (feats_o[a] @ feats_r[b].T).numpy()
                rows, cols = linear_sum_assignment(sim, maximize=True)
                total[a, b] += sim[rows, cols].sum()
        weight += seg.n_units
    if fixed_members:
        flat = [Member(m.name, m.axis, m.index.reshape(n, -1)) for m, _ in fixed_members]
        sim = similarity(orig, rest, flat, cosine, center=center)
        units = sum(group.segments[s].n_units for s in {s for _, s in fixed_members})
        total += sim * (units if cosine else 1)
        weight += units
    return total / max(weight, 1) if cosine else total


def group_similarity(group, orig, rest, owners, solved, shapes, method, center: bool = False) -> np.ndarray:
    """(n, n) cosine (or, with ``center``, correlation) similarity of a group's units: rows the
    original's, columns the suspect's; over the eligible members (``argmax``/``rank``: the
    layer's own weights only, as the paper does)."""
    if group.kind == "blocks":
        ok = {(m.name, m.axis) for seg in group.segments
              for m in eligible(group, seg.members, owners, solved, shapes)}
        if method in ("argmax", "rank"):
            own = anchor(group, group.members, shapes)
            ok = {(m.name, m.axis) for m in own} | {
                (m.name, m.axis) for seg in group.segments for m in seg.members if m.name == own[0].name}
        return block_similarity(group, orig, rest, ok, cosine=True, center=center)
    members = eligible(group, group.members, owners, solved, shapes)
    if method in ("argmax", "rank"):
        members = anchor(group, members, shapes)
    return similarity(orig, rest, members, cosine=True, center=center)
