"""The re-synchronization methods (see the package docstring)."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from scipy.optimize import linear_sum_assignment

from ..errors import ConfigError, ShapeMismatchError, UnknownNameError
from ..graph import GroupSet, PermutationGroup, apply_group, state_tensors
from ..permutation import groups_of, resolve_inputs, unwrap
from ..utils.progress import track
from ..utils.seeding import numpy_rng
from .features import anchor, block_similarity, features, group_similarity, similarity

METHODS = ("lap", "argmax", "weight-matching", "rank")


@dataclass
class ResyncResult:
    """The re-synchronized model and how each group was matched.

    ``maps[name][u]`` is the suspect unit placed at position ``u`` (a permutation except
    for ``argmax``); ``perms`` (bijective methods) is its inverse, comparable with the
    truth written by ``permute``: ``perms[name][u]`` is the original unit that the
    suspect holds at ``u``.
    """

    model: nn.Module
    method: str
    maps: dict[str, np.ndarray]
    groups: list[dict[str, Any]]
    psi: float | None = None
    seconds: float = 0.0
    similarities: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def perms(self) -> dict[str, list[int]]:
        out = {}
        for name, m in self.maps.items():
            if len(np.unique(m)) == len(m):
                out[name] = np.argsort(m).tolist()
        return out

    @property
    def collisions(self) -> int:
        return int(sum(g.get("collisions", 0) for g in self.groups))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "psi": self.psi, "collisions": self.collisions,
                "seconds": self.seconds, "groups": self.groups}


# --------------------------------------------------------------------- solvers

def _solve(sim: np.ndarray, method: str) -> np.ndarray:
    """``map[u]`` = suspect unit placed at original position ``u``."""
    if method == "argmax":
        return sim.argmax(1)
    rows, cols = linear_sum_assignment(sim, maximize=True)
    out = np.empty(len(rows), dtype=np.int64)
    out[rows] = cols
    return out


def _confidence(sim: np.ndarray, mapping: np.ndarray) -> dict[str, float]:
    n = len(mapping)
    if n < 2:
        return {"margin": 1.0, "unambiguous": 100.0}
    top2 = np.sort(sim, 1)[:, -2:]
    margin = float(np.mean(top2[:, 1] - top2[:, 0]))
    mutual = (sim.argmax(1) == mapping) & (sim.argmax(0)[mapping] == np.arange(n))
    return {"margin": margin, "unambiguous": 100.0 * float(mutual.mean())}


def unambiguous_share(groups: list[dict[str, Any]]) -> float:
    """Share (0-100) of neurons, over groups of 2+ units, that are each other's best match.

    ``groups`` are :attr:`ResyncResult.groups` rows. Needs no ground truth, so it is the
    confidence a user sees when the attacker's permutation is unknown.
    """
    sized = [(g.get("unambiguous", 0.0), g["size"]) for g in groups if g["size"] >= 2]
    if not sized:
        return 100.0
    return float(sum(s * n for s, n in sized) / sum(n for _, n in sized))


def _rank_map(orig, rest, group: PermutationGroup, shapes) -> np.ndarray:
    members = anchor(group, group.members, shapes)
    so = features(orig, members, lambda m: m.index, cosine=False).sum(1).numpy()
    sr = features(rest, members, lambda m: m.index, cosine=False).sum(1).numpy()
    out = np.empty(group.size, dtype=np.int64)
    out[np.argsort(so, kind="stable")] = np.argsort(sr, kind="stable")
    return out


class _Tags:
    """Which suspect unit sits where, updated with every move (children follow blocks)."""

    def __init__(self, group_set: GroupSet):
        self.tags = {g.name: np.arange(g.size) for g in group_set}
        self.children = {g.name: [[c for c in seg.children if c] for seg in g.segments] for g in group_set if g.kind == "blocks"}
        self.group_set = group_set

    def move(self, group: PermutationGroup, mapping: np.ndarray) -> None:
        self.tags[group.name] = self.tags[group.name][mapping]
        if group.kind == "blocks":
            for seg in group.segments:
                if seg.children and all(seg.children):
                    old = [self.tags[c] for c in seg.children]
                    for u, c in enumerate(seg.children):
                        self.tags[c] = old[mapping[u]]


def _apply(rest_tensors, tags: _Tags, group_set: GroupSet, group: PermutationGroup, mapping: np.ndarray) -> None:
    apply_group(rest_tensors, group, mapping)
    tags.move(group, mapping)


# --------------------------------------------------------------------- main entry

def check_same_architecture(original: nn.Module, suspect: nn.Module) -> None:
    """Raise :class:`ShapeMismatchError` if the two models' tensors differ in names or shapes."""
    from ..io.modelcheck import describe_mismatch

    a, b = original.state_dict(), suspect.state_dict()
    problem = describe_mismatch(a, b, type(original).__name__)
    if problem:
        raise ShapeMismatchError("the two models do not have the same architecture: "
                                 + problem.split(": ", 1)[1].replace("file", "suspect").replace("vs model", "vs original"))


def _psi(mapping: np.ndarray, truth: np.ndarray) -> float:
    return 100.0 * float(np.mean(truth[mapping] == np.arange(len(mapping))))


def resync(
    original: Any,
    suspect: Any,
    method: str = "lap",
    truth: dict[str, Sequence[int]] | None = None,
    example_inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    group_set: GroupSet | None = None,
    groups: Sequence[str] | None = None,
    capture: Sequence[str] = (),
    max_iter: int = 100,
    seed: int = 0,
    quiet: bool = True,
    center: bool = False,
    reverse: bool = False,
) -> ResyncResult:
    """Re-synchronize ``suspect`` to ``original``.

    Args:
        original, suspect: same architecture (``nn.Module`` or loaded models).
        method: one of :data:`METHODS`.
        truth: the true permutations (``permute(...).perms`` or a truth file) to score Ψ.
        example_inputs: inputs for the graph analysis (default: from the metadata).
        group_set: precomputed groups of ``original``.
        groups: solve only these groups (default: all).
        capture: group names whose similarity matrix (before solving) is kept.
        max_iter: passes over all groups for ``weight-matching``; refinement passes of
            ``lap`` (0: the single sequential pass of the paper's Algorithm 1).
        center: compare units by correlation (features centred over the units) instead
            of cosine; :func:`nnforensics.integrity.compare` uses it for its evidence passes.
        reverse: visit the groups consumers first, so that each is compared over the
            parameters of the layers it feeds (its fan-out) instead of its own (fan-in).

    Returns:
        :class:`ResyncResult`; ``psi`` is the percentage of units put back at their
        original position (when ``truth`` is given), overall and per group.
    """
    if method not in METHODS:
        raise UnknownNameError("method", method, METHODS)
    orig_m, _ = unwrap(original)
    sus_m, _ = unwrap(suspect)
    check_same_architecture(orig_m, sus_m)
    group_set = groups_of(original, resolve_inputs(original, example_inputs) if group_set is None else None, group_set)
    chosen = group_set.select(groups)
    if truth is not None:
        for name, perm in truth.items():
            if name not in group_set or len(perm) != group_set[name].size:
                raise ConfigError(f"truth does not fit the model: group {name!r} "
                                  + ("does not exist" if name not in group_set else
                                     f"has {group_set[name].size} units, truth has {len(perm)}"))
    start = time.perf_counter()
    restored = copy.deepcopy(sus_m).eval()
    orig = {k: v.detach() for k, v in state_tensors(orig_m).items()}
    rest = state_tensors(restored)
    shapes = group_set.shapes
    owners = group_set.axis_owners()
    tags = _Tags(group_set)
    stats: dict[str, dict[str, float]] = {}
    captured: dict[str, np.ndarray] = {}
    if method == "weight-matching":
        _weight_matching(chosen, orig, rest, tags, group_set, stats, max_iter, seed, quiet)
    else:
        solved: set[str] = {g.name for g in group_set if g not in chosen}
        for group in track(chosen[::-1] if reverse else chosen, f"resync ({method})", quiet=quiet):
            sim = group_similarity(group, orig, rest, owners, solved, shapes, method, center)
            if group.name in capture:
                captured[group.name] = sim
            mapping = _rank_map(orig, rest, group, shapes) if method == "rank" and group.kind != "blocks" \
                else _solve(sim, "argmax" if method == "argmax" else "lap")
            stats[group.name] = _confidence(sim, mapping)
            _apply(rest, tags, group_set, group, mapping)
            solved.add(group.name)
        if method == "lap":
            _refine(chosen, orig, rest, tags, group_set, stats, max_iter, quiet)
    seconds = time.perf_counter() - start
    maps = {g.name: tags.tags[g.name] for g in chosen}
    rows, correct, total = [], 0.0, 0
    for g in chosen:
        m = maps[g.name]
        row: dict[str, Any] = {"name": g.name, "size": g.size, "kind": g.kind,
                               "collisions": int(g.size - len(np.unique(m))), **stats.get(g.name, {})}
        if truth is not None and g.name in truth:
            row["psi"] = _psi(m, np.asarray(truth[g.name]))
            correct += row["psi"] * g.size / 100
            total += g.size
        rows.append(row)
    psi = 100.0 * correct / total if truth is not None and total else None
    return ResyncResult(restored, method, maps, rows, psi, seconds, captured)


def _refine(chosen, orig, rest, tags, group_set, stats, max_iter, quiet) -> None:
    """Second and later passes of ``lap``: now that every group has an estimate, compare
    each group's units over *all* coupled parameters (the next layers' inputs too), in
    topological order, until a whole pass changes nothing. This rescues groups whose own
    weights carry little signal (e.g. a first conv with 9 weights per neuron under noise)."""
    shapes = group_set.shapes
    owners = group_set.axis_owners()
    everything = set(group_set.names())
    for _ in range(max_iter):
        changed = False
        for group in chosen:
            sim = group_similarity(group, orig, rest, owners, everything, shapes, "lap")
            mapping = _solve(sim, "lap")
            if not np.array_equal(mapping, np.arange(group.size)):
                current = np.trace(sim)
                if sim[np.arange(group.size), mapping].sum() > current + 1e-9 * max(1.0, abs(current)):
                    _apply(rest, tags, group_set, group, mapping)
                    stats[group.name] = _confidence(sim[:, mapping], np.arange(group.size))
                    changed = True
        if not changed:
            return


def _weight_matching(chosen, orig, rest, tags, group_set, stats, max_iter, seed, quiet) -> None:
    """Git Re-Basin: per group, maximise the sum of inner products over all coupled axes."""
    rng = numpy_rng("weight-matching", seed)
    for _ in track(range(max_iter), "resync (weight-matching)", quiet=quiet):
        changed = False
        for i in rng.permutation(len(chosen)):
            group = chosen[i]
            if group.kind == "blocks":
                ok = {(m.name, m.axis) for seg in group.segments for m in seg.members}
                sim = block_similarity(group, orig, rest, ok, cosine=False)
            else:
                sim = similarity(orig, rest, group.members, cosine=False)
            mapping = _solve(sim, "lap")
            identity = np.arange(group.size)
            gain = sim[identity, mapping].sum() - np.trace(sim)
            if not np.array_equal(mapping, identity) and gain > 1e-9 * max(1.0, abs(np.trace(sim))):
                _apply(rest, tags, group_set, group, mapping)
                changed = True
        if not changed:
            break
    for group in chosen:  # report confidence on the final alignment (cosine)
        if group.kind == "blocks":
            ok = {(m.name, m.axis) for seg in group.segments for m in seg.members}
            sim = block_similarity(group, orig, rest, ok, cosine=True)
        else:
            sim = similarity(orig, rest, group.members, cosine=True)
        stats[group.name] = _confidence(sim, np.arange(group.size))


def similarity_matrix(original: Any, suspect: Any, group_set: GroupSet | None, group_name: str,
                      example_inputs: torch.Tensor | Sequence[torch.Tensor] | None = None) -> np.ndarray:
    """(N, N) cosine similarities between the original's and the suspect's units of one group
    (rows: original units, columns: suspect units), with every earlier group already
    re-synchronized, as the paper's Fig. 6 shows them."""
    gs = groups_of(original, example_inputs if group_set is None else None, group_set)
    gs[group_name]  # unknown name -> clear error
    earlier = [g.name for g in gs if g.order <= gs[group_name].order]
    return resync(original, suspect, method="lap", group_set=gs, groups=earlier, capture=[group_name],
                  max_iter=0).similarities[group_name]
