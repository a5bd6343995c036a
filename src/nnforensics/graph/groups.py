"""Permutation groups: sets of parameter axes that must be permuted together."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UnknownNameError
from .labels import LabelState


@dataclass
class Member:
    """Where a group's units sit in one tensor.

    Attributes:
        name: parameter or buffer name (``model.named_parameters()`` / ``named_buffers()``).
        axis: the tensor axis the group permutes.
        index: (size, k) int64: unit ``u`` occupies positions ``index[u]`` along ``axis``
            (k > 1 e.g. for flatten->Linear inputs, attention heads, concatenations).
    """

    name: str
    axis: int
    index: np.ndarray

    @property
    def k(self) -> int:
        return int(self.index.shape[1])


@dataclass
class Segment:
    """Units of one kind inside every block of a block group (e.g. a head's query/key dims).

    ``members[i].index`` has shape (n_blocks, n_units, k). ``permutable`` is False when
    the units may move with their block but not within it (grouped-convolution inputs).
    """

    members: list[Member]
    permutable: bool
    children: list[str | None] = field(default_factory=list)  # within-block group name per block

    @property
    def n_units(self) -> int:
        return int(self.members[0].index.shape[1])


@dataclass
class PermutationGroup:
    """A set of units (neurons, channels, heads...) that may be reordered together.

    Applying a permutation ``perm`` (length ``size``) means: the unit now at position
    ``u`` is the one that was at ``perm[u]``, in every member tensor at once. The
    network computes the same function afterwards.

    Attributes:
        kind: ``neurons`` (plain units), ``blocks`` (units are blocks such as attention
            heads, each made of smaller units), or ``within`` (units inside one block).
        parent / slot: for ``within`` groups, the block group and the block's position.
        segments: for ``blocks`` groups, the structure inside each block.
        layers: module names the group touches (for display).
        order: position in topological order (producers before consumers).
    """

    name: str
    size: int
    members: list[Member]
    kind: str = "neurons"
    layer: str = ""
    layers: list[str] = field(default_factory=list)
    parent: str | None = None
    slot: int | None = None
    segments: list[Segment] = field(default_factory=list)
    order: int = 0
    tag: str = ""

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "kind": self.kind, "layer": self.layer,
                "layers": self.layers, "parent": self.parent,
                "members": [f"{m.name}[{m.axis}]" + (f"x{m.k}" if m.k > 1 else "") for m in self.members]}


class GroupSet(Sequence):
    """The permutation groups of a model, producers before consumers."""

    def __init__(self, groups: list[PermutationGroup], shapes: dict[str, tuple[int, ...]], validated: bool = False):
        self.groups = groups
        self.shapes = shapes
        self.validated = validated
        self._by_name = {g.name: g for g in groups}

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[PermutationGroup]:
        return iter(self.groups)

    def __getitem__(self, key: int | str) -> PermutationGroup:  # type: ignore[override]
        if isinstance(key, str):
            if key not in self._by_name:
                raise UnknownNameError("group", key, self._by_name)
            return self._by_name[key]
        return self.groups[key]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return [g.name for g in self.groups]

    @property
    def n_units(self) -> int:
        return sum(g.size for g in self.groups)

    def select(self, names: Iterable[str] | None) -> list[PermutationGroup]:
        """Groups named (with the within-block groups of named block groups), in order."""
        if names is None:
            return list(self.groups)
        wanted = set()
        for name in names:
            group = self[name]
            wanted.add(group.name)
            if group.kind == "blocks":
                wanted.update(g.name for g in self.groups if g.parent == group.name)
        return [g for g in self.groups if g.name in wanted]

    def for_layer(self, layer: str) -> str:
        """Name of the group whose units are the output neurons of ``layer``."""
        for suffix in ("weight", "in_proj_weight"):
            for axis in (0, 1):
                for g in self.groups:
                    if any(m.name == f"{layer}.{suffix}" and m.axis == axis for m in g.members) and \
                            (axis == 0 or g.layer == layer):
                        return g.name
        layers = sorted({g.layer for g in self.groups})
        raise UnknownNameError("layer with permutable outputs", layer, layers)

    def axis_owners(self) -> dict[tuple[str, int], list[str]]:
        """``(tensor, axis) -> names of the groups permuting that axis``."""
        owners: dict[tuple[str, int], list[str]] = defaultdict(list)
        for g in self.groups:
            for m in g.members:
                if g.name not in owners[(m.name, m.axis)]:
                    owners[(m.name, m.axis)].append(g.name)
        return dict(owners)

    def summary(self) -> list[dict[str, Any]]:
        return [g.summary() for g in self.groups]


# --------------------------------------------------------------------- building

def _module_of(param: str) -> str:
    return param.rsplit(".", 1)[0] if "." in param else ""


@dataclass
class _Class:
    root: int
    members: dict[tuple[int, int], np.ndarray]  # (param, axis) -> sorted positions
    sig: tuple
    frozen: bool = False
    block: int = -1

    @property
    def anchor(self) -> tuple[int, int, int]:
        (p, a), pos = next(iter(sorted(self.members.items())))
        return (p, a, int(pos[0]))


def _classes(state: LabelState) -> dict[int, _Class]:
    n = len(state.atoms)
    param = np.concatenate(state.atom_param)
    axis = np.concatenate(state.atom_axis)
    pos = np.concatenate(state.atom_pos)
    roots = state.atoms.find(np.arange(n))
    free = np.nonzero((roots != 0) & (np.arange(n) > 0))[0]
    order = np.lexsort((pos[free], axis[free], param[free], roots[free]))
    ids = free[order]
    r, p, a, q = roots[ids], param[ids], axis[ids], pos[ids]
    classes: dict[int, _Class] = {}
    if not len(ids):
        return classes
    cuts = np.nonzero(np.diff(r))[0] + 1
    for seg in np.split(np.arange(len(ids)), cuts):
        members: dict[tuple[int, int], np.ndarray] = {}
        sp, sa = p[seg], a[seg]
        keys = np.nonzero((np.diff(sp) != 0) | (np.diff(sa) != 0))[0] + 1
        for part in np.split(seg, keys):
            members[(int(p[part[0]]), int(a[part[0]]))] = q[part]
        sig = tuple((k[0], k[1], len(v)) for k, v in sorted(members.items()))
        classes[int(r[seg[0]])] = _Class(int(r[seg[0]]), members, sig)
    return classes


def _assign_blocks(state: LabelState, classes: dict[int, _Class]) -> None:
    if state.member_atoms:
        atoms = state.atoms.find(np.concatenate(state.member_atoms))
        blocks = np.concatenate(state.member_blocks)
        # An atom that cannot move pins its block; one class in two blocks joins them.
        state.fix_blocks(blocks[atoms == 0])
        blocks = state.blocks.find(blocks)
        pairs = np.unique(np.stack([atoms, blocks], 1), axis=0)
        # A unit in two different blocks means nested blocks (e.g. GroupNorm groups inside
        # the groups of a grouped convolution). Keep the outer structure only: merge them
        # and pin every unit inside (the merged block moves as a whole).
        same = pairs[1:, 0] == pairs[:-1, 0]
        nested = pairs[1:, 1][same]
        state.blocks.union(nested, pairs[:-1, 1][same])
        rigid = set(state.blocks.find(nested).tolist())
        blocks = state.blocks.find(pairs[:, 1])
        for atom_root, block in zip(pairs[:, 0], blocks):
            if atom_root in classes:
                classes[int(atom_root)].block = int(block)
        for c in classes.values():
            if c.block >= 0 and c.block in rigid:
                c.frozen = True
    if state.frozen:
        frozen = set(state.atoms.find(np.concatenate(state.frozen)).tolist())
        for root in frozen & set(classes):
            classes[root].frozen = True


def _members(classes: list[_Class], names: list[str]) -> list[Member]:
    keys = [k for k in classes[0].members]
    return [Member(names[p], a, np.stack([c.members[(p, a)] for c in classes]).astype(np.int64)) for p, a in keys]


def _anchor_name(members: list[Member], first_use: dict[str, int], shapes: dict[str, tuple[int, ...]]) -> str:
    producers = [m for m in members if m.axis == 0 and len(shapes.get(m.name, ())) >= 2]
    pool = producers or [m for m in members if m.axis == 0] or members
    best = min(pool, key=lambda m: (first_use.get(m.name, 1 << 30), m.name))
    return _module_of(best.name) or best.name


def _order_of(members: list[Member], first_use: dict[str, int]) -> int:
    return min(first_use.get(m.name, 1 << 30) for m in members)


def build_groups(
    state: LabelState,
    names: list[str],
    shapes: dict[str, tuple[int, ...]],
    first_use_idx: dict[int, int],
) -> GroupSet:
    """Turn the relations found by propagation into permutation groups."""
    first_use = {names[p]: step for p, step in first_use_idx.items()}
    classes = _classes(state)
    _assign_blocks(state, classes)
    plain: dict[tuple, list[_Class]] = defaultdict(list)
    by_block: dict[int, list[_Class]] = defaultdict(list)
    for c in classes.values():
        if c.block >= 0:
            by_block[c.block].append(c)
        elif not c.frozen:
            plain[c.sig].append(c)
    drafts: list[PermutationGroup] = []
    for sig, members in plain.items():
        if len(members) < 2:
            continue
        members.sort(key=lambda c: c.anchor)
        ms = _members(members, names)
        drafts.append(PermutationGroup("", len(members), ms, "neurons", order=_order_of(ms, first_use)))
    drafts += _block_groups(state, by_block, names, shapes, first_use)
    return _finish(drafts, shapes, first_use)


def _block_groups(state, by_block, names, shapes, first_use) -> list[PermutationGroup]:
    fixed = set(state.blocks.find(np.concatenate(state.fixed_blocks)).tolist()) if state.fixed_blocks else set()
    structures: dict[tuple, list[tuple[int, list[list[_Class]]]]] = defaultdict(list)
    for block, members in by_block.items():
        segs: dict[tuple, list[_Class]] = defaultdict(list)
        for c in members:
            segs[(c.sig, c.frozen)].append(c)
        keys = sorted(segs)
        for key in keys:
            segs[key].sort(key=lambda c: c.anchor)
        signature = tuple((k, len(segs[k])) for k in keys)
        structures[signature].append((block, [segs[k] for k in keys]))
    out: list[PermutationGroup] = []
    for signature, blocks in structures.items():
        blocks.sort(key=lambda item: item[1][0][0].anchor)
        movable = [b for b in blocks if b[0] not in fixed]
        tag = state.block_tag.get(blocks[0][0], "group")
        n_seg = len(signature)
        segments: list[Segment] = []
        for s in range(n_seg):
            key = signature[s][0]
            per_block = [segs[s] for _, segs in movable] if len(movable) >= 2 else []
            seg_members = []
            if per_block:
                for p, a in per_block[0][0].members:
                    idx = np.stack([np.stack([c.members[(p, a)] for c in seg]) for seg in per_block]).astype(np.int64)
                    seg_members.append(Member(names[p], a, idx))
            segments.append(Segment(seg_members, permutable=not key[1]))
        group = None
        if len(movable) >= 2:
            members = _concat_members(segments)
            group = PermutationGroup("", len(movable), members, "blocks", segments=segments,
                                     order=_order_of(members, first_use), tag=tag)
            out.append(group)
        # Units inside each block (every block, movable or not).
        for slot, (block, segs) in enumerate(blocks):
            for s, seg in enumerate(segs):
                if not signature[s][0][1] and len(seg) >= 2:
                    ms = _members(seg, names)
                    child = PermutationGroup("", len(seg), ms, "within", order=_order_of(ms, first_use), tag=tag)
                    if group is not None and block not in fixed:
                        child.parent = group  # resolved to a name in _finish
                        child.slot = [b for b, _ in movable].index(block)
                        child.segment = s  # type: ignore[attr-defined]
                    out.append(child)
    return out


def _concat_members(segments: list[Segment]) -> list[Member]:
    merged: dict[tuple[str, int], list[np.ndarray]] = {}
    for seg in segments:
        for m in seg.members:
            n_blocks = m.index.shape[0]
            merged.setdefault((m.name, m.axis), []).append(m.index.reshape(n_blocks, -1))
    return [Member(name, axis, np.concatenate(parts, 1)) for (name, axis), parts in merged.items()]


def _finish(drafts: list[PermutationGroup], shapes, first_use) -> GroupSet:
    for g in drafts:
        g.layer = _anchor_name(g.members, first_use, shapes)
        g.layers = list(dict.fromkeys(_module_of(m.name) or m.name for m in g.members))
    # Block groups before their children; otherwise producers first.
    def key(g: PermutationGroup):
        if g.kind == "within" and isinstance(g.parent, PermutationGroup):
            return (g.parent.order, g.parent.layer, 1, g.slot or 0, g.order)
        return (g.order, g.layer, 0, 0, 0)

    drafts.sort(key=key)
    used: Counter = Counter()
    for g in drafts:
        if g.kind == "within":
            continue
        base = g.layer + (":heads" if g.kind == "blocks" and g.tag == "head" else
                          ":groups" if g.kind == "blocks" and any(s.permutable and s.n_units > 1 for s in g.segments) else "")
        used[base] += 1
        g.name = base if used[base] == 1 else f"{base}#{used[base]}"
    for g in drafts:
        if g.kind != "within":
            continue
        unit = "head" if g.tag == "head" else "group"
        if isinstance(g.parent, PermutationGroup):
            parent = g.parent
            base = f"{parent.name.rsplit(':', 1)[0]}:{unit}{g.slot}"
            g.parent = parent.name
            seg = parent.segments[g.segment]  # type: ignore[attr-defined]
            if not seg.children:
                seg.children = [None] * parent.size
            seg.children[g.slot] = None  # filled below once the name is final
        else:
            base = f"{g.layer}:{unit}"
        used[base] += 1
        g.name = f"{base}.{used[base] - 1}"
    by_name = {g.name: g for g in drafts}
    for g in drafts:
        if g.kind == "within" and g.parent is not None:
            parent = by_name[g.parent]
            parent.segments[g.segment].children[g.slot] = g.name  # type: ignore[attr-defined]
    for i, g in enumerate(drafts):
        g.order = i
    return GroupSet(drafts, shapes)
