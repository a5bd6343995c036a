"""Labels that follow every parameter axis through a traced computation.

Each parameter axis of size > 1 gets fresh *atom* ids, one per position. A tensor value
carries a tuple of :class:`Layer` s; a layer *owns* some axes of the value and holds,
for every position along them, the atom (or *block*) that sits there. The value is
constant along the axes it does not own. Operations pair labels position by position:
two atoms paired must be permuted together (union), an atom paired with a block must
move with that block (membership), atoms paired with data that cannot move (inputs,
outputs, kernel positions) are *fixed*. Blocks arise where a computation contracts a
labelled axis separately for each position of another labelled axis: attention heads,
GroupNorm groups, grouped convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .unionfind import UnionFind

BLOCK_BASE = 1 << 40  # ids >= BLOCK_BASE are blocks; 0 is the fixed atom; -1 means "no label"
NONE = -1


@dataclass(frozen=True)
class Layer:
    """Labels of one set of axes of a value.

    Attributes:
        axes: the axes this layer owns (value coordinates).
        ids: int64 tensor with the value's number of dimensions, size 1 on every axis
            not in ``axes``.
    """

    axes: frozenset[int]
    ids: torch.Tensor

    def shifted(self, offset: int) -> Layer:
        """Left-pad with ``offset`` new leading axes."""
        if offset == 0:
            return self
        ids = self.ids.reshape((1,) * offset + tuple(self.ids.shape))
        return Layer(frozenset(a + offset for a in self.axes), ids)


Labels = tuple  # tuple[Layer, ...] for tensors; () means "plain" (data or constants)


class LabelState:
    """Atoms, blocks and the relations found between them."""

    def __init__(self) -> None:
        self.atoms = UnionFind()
        self.blocks = UnionFind()
        self.atom_param: list[np.ndarray] = [np.array([-1])]
        self.atom_axis: list[np.ndarray] = [np.array([-1])]
        self.atom_pos: list[np.ndarray] = [np.array([-1])]
        self.member_atoms: list[np.ndarray] = []
        self.member_blocks: list[np.ndarray] = []
        self.frozen: list[np.ndarray] = []
        self.fixed_blocks: list[np.ndarray] = []  # blocks that cannot move (kept apart: not merged)
        self.block_tag: dict[int, str] = {}
        self.block_by_set: dict[frozenset, int] = {}  # units of a contraction block -> its block

    # ------------------------------------------------------------------ creation
    def new_atoms(self, param: int, axis: int, size: int) -> np.ndarray:
        start = self.atoms.add(size)
        self.atom_param.append(np.full(size, param))
        self.atom_axis.append(np.full(size, axis))
        self.atom_pos.append(np.arange(size))
        return np.arange(start, start + size, dtype=np.int64)

    def new_blocks(self, count: int, tag: str) -> np.ndarray:
        start = self.blocks.add(count)
        for i in range(start, start + count):
            self.block_tag[i] = tag
        return np.arange(start, start + count, dtype=np.int64) + BLOCK_BASE

    def param_layers(self, param: int, shape: tuple[int, ...]) -> Labels:
        """One layer per axis of size > 1 of a parameter (or float buffer)."""
        layers = []
        for axis, size in enumerate(shape):
            if size > 1:
                ids = torch.from_numpy(self.new_atoms(param, axis, size))
                view = [1] * len(shape)
                view[axis] = size
                layers.append(Layer(frozenset({axis}), ids.reshape(view)))
        return tuple(layers)

    # ------------------------------------------------------------------ relations
    def canon(self, ids: torch.Tensor) -> torch.Tensor:
        """Replace every id by the root of its set (so equal units compare equal)."""
        arr = ids.numpy().copy()
        atom = (arr >= 0) & (arr < BLOCK_BASE)
        block = arr >= BLOCK_BASE
        if atom.any():
            arr[atom] = self.atoms.find(arr[atom])
        if block.any():
            arr[block] = self.blocks.find(arr[block] - BLOCK_BASE) + BLOCK_BASE
        return torch.from_numpy(arr)

    def pair(self, a: torch.Tensor, b: torch.Tensor) -> None:
        """Relate ``a`` and ``b`` position by position (after broadcasting)."""
        a, b = torch.broadcast_tensors(a, b)
        pairs = torch.stack([a.reshape(-1), b.reshape(-1)], 1).numpy()
        pairs = pairs[(pairs[:, 0] != NONE) & (pairs[:, 1] != NONE)]
        if not len(pairs):
            return
        pairs = np.unique(pairs, axis=0)
        x, y = pairs[:, 0], pairs[:, 1]
        xa, ya = x < BLOCK_BASE, y < BLOCK_BASE
        both = xa & ya
        self.atoms.union(x[both], y[both])
        neither = ~xa & ~ya
        self.blocks.union(x[neither] - BLOCK_BASE, y[neither] - BLOCK_BASE)
        mixed = xa & ~ya
        self.add_membership(x[mixed], y[mixed])
        mixed = ~xa & ya
        self.add_membership(y[mixed], x[mixed])

    def add_membership(self, atoms: np.ndarray, blocks: np.ndarray) -> None:
        """Each ``atoms[i]`` moves with block ``blocks[i]`` (block ids with BLOCK_BASE)."""
        if len(atoms):
            self.member_atoms.append(np.asarray(atoms, dtype=np.int64))
            self.member_blocks.append(np.asarray(blocks, dtype=np.int64) - BLOCK_BASE)

    def fix(self, ids: torch.Tensor) -> None:
        """Nothing in ``ids`` may be permuted."""
        arr = ids.reshape(-1).numpy()
        arr = np.unique(arr[arr != NONE])
        self.atoms.fix(arr[arr < BLOCK_BASE])
        self.fix_blocks(arr[arr >= BLOCK_BASE] - BLOCK_BASE)

    def fix_blocks(self, blocks: np.ndarray) -> None:
        """Blocks (ids without BLOCK_BASE) that cannot move; their insides still may."""
        blocks = np.asarray(blocks, dtype=np.int64).ravel()
        if blocks.size:
            self.fixed_blocks.append(blocks)

    def freeze(self, ids: torch.Tensor) -> None:
        """Atoms that may move with their block but not within it."""
        arr = ids.reshape(-1).numpy()
        self.frozen.append(np.unique(arr[(arr > 0) & (arr < BLOCK_BASE)]))

    def _merge_identical(self, atoms: np.ndarray, blocks: np.ndarray) -> None:
        """Blocks holding exactly the same units are one block (e.g. one attention head
        seen for every sample of a batch folded into the head axis, B*H)."""
        roots = np.where((atoms > 0) & (atoms < BLOCK_BASE), self.atoms.find(np.clip(atoms, 0, BLOCK_BASE - 1)), atoms)
        order = np.argsort(blocks, kind="stable")
        cuts = np.nonzero(np.diff(blocks[order]))[0] + 1
        for part in np.split(order, cuts):
            key = frozenset(roots[part].tolist())
            block = int(blocks[part[0]]) - BLOCK_BASE
            known = self.block_by_set.setdefault(key, block)
            if known != block:
                self.blocks.union(np.array([known]), np.array([block]))

    # ------------------------------------------------------------------ layer helpers
    def collapse(self, layer: Layer) -> Layer:
        """Enforce the invariant: constant along axes the layer does not own."""
        ids = layer.ids
        for d in range(ids.dim()):
            if d not in layer.axes and ids.shape[d] > 1:
                first = ids.narrow(d, 0, 1)
                self.pair(ids, first)
                ids = first
        return Layer(layer.axes, self.canon(ids.contiguous()))

    def blocks_over(self, layer: Layer, reduced: set[int], tag: str) -> Layer | None:
        """Contract ``layer`` over ``reduced`` axes: one block per position of its other axes.

        Returns the block layer (owning the remaining axes, ``reduced`` axes kept with
        size 1), or None when the layer owns no other axis (the full set is reduced).
        """
        rest = layer.axes - reduced
        if not rest:
            return None
        kept_shape = [1 if d in reduced else s for d, s in enumerate(layer.ids.shape)]
        count = int(np.prod(kept_shape))
        block_ids = torch.from_numpy(self.new_blocks(count, tag)).reshape(kept_shape)
        atoms, blocks = torch.broadcast_tensors(layer.ids, block_ids)
        atoms, blocks = atoms.reshape(-1).numpy(), blocks.reshape(-1).numpy()
        self._merge_identical(atoms, blocks)
        is_atom = (atoms > 0) & (atoms < BLOCK_BASE)
        self.add_membership(atoms[is_atom], blocks[is_atom])
        nested = atoms >= BLOCK_BASE  # blocks inside blocks: merge (conservative)
        if nested.any():
            self.blocks.union(atoms[nested] - BLOCK_BASE, blocks[nested] - BLOCK_BASE)
        fixed = atoms == 0
        if fixed.any():
            self.fix_blocks(blocks[fixed] - BLOCK_BASE)
        return Layer(frozenset(rest), block_ids)
