"""Evaluate only what a filtered layer changes: the rest of the forward pass is cached.

When one layer is filtered, everything computed before it (and every branch that does
not depend on it) is the same at every threshold. :class:`SuffixForward` traces the
model once with ``torch.fx``, runs it once on the evaluation inputs keeping the values
that feed the part downstream of the filtered layers, and from then on re-runs only that
downstream part. Results are bit-identical to a full forward pass on CPU (the same
operations on the same tensors; only their scheduling differs).

Models that ``torch.fx`` cannot trace (data-dependent control flow), changing weights
that no traced node reads directly, in-place writes of changing values into earlier
tensors, and caches larger than :data:`MAX_CACHE_BYTES` (all batches together) fall back
to the full forward pass.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn

#: Largest cache of intermediate values (bytes; ``NNF_FILTER_CACHE_BYTES`` overrides).
MAX_CACHE_BYTES = int(os.environ.get("NNF_FILTER_CACHE_BYTES", 2 * 1024**3))


def trace_or_none(model: nn.Module) -> fx.GraphModule | None:
    """The model traced with ``torch.fx`` (leaf modules kept), or ``None`` if it cannot be traced."""
    try:
        return fx.symbolic_trace(model)
    except Exception:  # any tracing failure means: use the full forward pass
        return None


def _tensor_ids(traced: fx.GraphModule, node: fx.Node) -> set[int]:
    """Ids of the parameters and buffers a node reads (a called module's, recursively)."""
    if node.op == "call_module":
        module = traced.get_submodule(str(node.target))
        return {id(t) for t in [*module.parameters(), *module.buffers()]}
    if node.op == "get_attr":
        owner, _, name = str(node.target).rpartition(".")
        value = getattr(traced.get_submodule(owner) if owner else traced, name, None)
        return {id(value)} if isinstance(value, torch.Tensor) else set()
    return set()


def _mutates(traced: fx.GraphModule, node: fx.Node) -> bool:
    """Whether a node changes its first argument in place (``x.add_(y)``, ``ReLU(inplace=True)``...)."""
    if node.op == "call_method":
        return str(node.target).endswith("_") and not str(node.target).endswith("__")
    if node.op == "call_function":
        name = getattr(node.target, "__name__", "")
        augmented = name.startswith("i") and name[1:] in ("add", "sub", "mul", "truediv", "and_", "or_")
        return augmented or (name.endswith("_") and not name.endswith("__")) or bool(node.kwargs.get("inplace"))
    if node.op == "call_module":
        return bool(getattr(traced.get_submodule(str(node.target)), "inplace", False))
    return False


def _downstream(traced: fx.GraphModule, changing: set[int]) -> set[fx.Node] | None:
    """Nodes whose value depends on the tensors ``changing`` (ids), or None when caching is unsafe.

    Unsafe: a changing tensor that no node reads directly (used through an alias the
    trace does not show), or an in-place operation that writes a changing value into a
    tensor computed before the change (the cache would be overwritten, and torch.fx's
    later users of that tensor would not be recomputed).
    """
    dirty: set[fx.Node] = set()
    reached: set[int] = set()
    for node in traced.graph.nodes:
        touched = _tensor_ids(traced, node) & changing
        reached |= touched
        if touched or any(arg in dirty for arg in node.all_input_nodes):
            dirty.add(node)
            if _mutates(traced, node) and node.args and isinstance(node.args[0], fx.Node) \
                    and node.args[0] not in dirty:
                return None
    return dirty if reached == changing else None


class SuffixForward:
    """``forward(i)``: the model's output on cached input batch ``i``, recomputing only what ``tensors`` change.

    Args:
        traced: the model traced by :func:`trace_or_none` (shares its parameters with the model).
        tensors: the parameters that will change (matched by identity, so tied weights and
            the modules that hold them are found wherever the graph reads them).
        batches: the input batches (already normalised), each (B, ...).

    ``usable`` is False when caching is unsafe or too large (see :func:`_downstream`): use
    full forward passes then.
    """

    def __init__(self, traced: fx.GraphModule, tensors: Sequence[torch.Tensor], batches: Sequence[torch.Tensor]):
        self.traced = traced
        graph = traced.graph
        dirty = _downstream(traced, {id(t) for t in tensors})
        self.usable = bool(dirty)
        if not self.usable:
            return
        self.dirty = dirty
        self.nodes = [n for n in graph.nodes if n in self.dirty or n.op == "output"]
        frontier = [n for n in graph.nodes if n not in self.dirty and any(u in self.dirty for u in n.users)]
        kept = set(frontier)
        if any(_mutates(traced, n) and n.args and n.args[0] in kept for n in graph.nodes):
            self.usable = False  # a cached value written in place: what the cache holds depends on the order
            return
        self.caches: list[dict[fx.Node, Any]] = []
        budget = MAX_CACHE_BYTES
        for batch in batches:
            cache = self._values(batch, frontier)
            budget -= sum(v.numel() * v.element_size() for v in cache.values() if isinstance(v, torch.Tensor))
            if budget < 0:  # the whole cache, every batch together, must fit
                self.usable, self.caches = False, []
                return
            self.caches.append(cache)

    @torch.no_grad()
    def _values(self, batch: torch.Tensor, keep: list[fx.Node]) -> dict[fx.Node, Any]:
        """The values of ``keep`` on ``batch``."""
        wanted = set(keep)
        nodes = list(self.traced.graph.nodes)
        last_use = {arg: i for i, node in enumerate(nodes) for arg in node.all_input_nodes}
        interpreter = fx.Interpreter(self.traced)
        env = interpreter.env  # run_node reads a node's inputs from here
        kept: dict[fx.Node, Any] = {}
        for i, node in enumerate(nodes):
            if node.op == "output":
                break
            env[node] = batch if node.op == "placeholder" else interpreter.run_node(node)
            if node in wanted:
                kept[node] = env[node]
            for arg in node.all_input_nodes:  # free what no later node reads
                if last_use[arg] == i:
                    env.pop(arg, None)
        return kept

    @torch.no_grad()
    def forward(self, index: int) -> torch.Tensor:
        interpreter = fx.Interpreter(self.traced)
        env = interpreter.env
        env.update(self.caches[index])
        for node in self.nodes:
            if node.op == "output":
                return fx.node.map_arg(node.args[0], lambda n: env[n])
            env[node] = interpreter.run_node(node)
        raise RuntimeError("the traced graph has no output")

