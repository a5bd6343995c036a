"""Evaluate only what a filtered layer changes: the rest of the forward pass is cached.

When one layer is filtered, everything computed before it (and every branch that does
not depend on it) is the same at every threshold. :class:`SuffixForward` traces the
model once with ``torch.fx``, runs it once on the evaluation inputs keeping the values
that feed the part downstream of the filtered layers, and from then on re-runs only that
downstream part. Results are bit-identical to a full forward pass on CPU (the same
operations on the same tensors; only their scheduling differs).

Models that ``torch.fx`` cannot trace (data-dependent control flow), targets that no
traced node calls (e.g. weights used through ``F.conv2d`` from another module), and
caches larger than :data:`MAX_CACHE_BYTES` fall back to the full forward pass.
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


def _downstream(graph: fx.Graph, layers: set[str]) -> set[fx.Node]:
    """Nodes whose value depends on the parameters of ``layers``."""
    dirty: set[fx.Node] = set()
    for node in graph.nodes:
        direct = (node.op == "call_module" and node.target in layers) or (
            node.op == "get_attr" and any(str(node.target).startswith(f"{name}.") for name in layers))
        if direct or any(arg in dirty for arg in node.all_input_nodes):
            dirty.add(node)
    return dirty


class SuffixForward:
    """``forward(i)``: the model's output on cached input batch ``i``, recomputing only what ``layers`` change.

    Args:
        traced: the model traced by :func:`trace_or_none` (shares its parameters with the model).
        layers: names of the modules whose parameters will change.
        batches: the input batches (already normalised), each (B, ...).
    """

    def __init__(self, traced: fx.GraphModule, layers: Sequence[str], batches: Sequence[torch.Tensor]):
        self.traced = traced
        graph = traced.graph
        self.dirty = _downstream(graph, set(layers))
        self.nodes = [n for n in graph.nodes if n in self.dirty or n.op == "output"]
        frontier = [n for n in graph.nodes if n not in self.dirty and any(u in self.dirty for u in n.users)]
        self.caches = [self._values(batch, frontier) for batch in batches]
        self.usable = bool(self.dirty) and all(cache is not None for cache in self.caches)

    @torch.no_grad()
    def _values(self, batch: torch.Tensor, keep: list[fx.Node]) -> dict[fx.Node, Any] | None:
        """The values of ``keep`` on ``batch`` (None once they would exceed the cache budget)."""
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
        size = sum(v.numel() * v.element_size() for v in kept.values() if isinstance(v, torch.Tensor))
        return kept if size * 1.0 <= MAX_CACHE_BYTES else None

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

