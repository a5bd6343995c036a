"""Propagation of labels through an aten-level graph (one rule per kind of operation)."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F

from ..errors import UnsupportedModelError
from .labels import LabelState, Labels, Layer

aten = torch.ops.aten

# Element-wise functions of one tensor that lack the ``pointwise`` tag.
UNARY = {
    "hardswish", "hardsigmoid", "hardtanh", "silu", "mish", "gelu", "elu", "selu", "celu", "leaky_relu",
    "softplus", "relu6", "relu", "sigmoid", "tanh", "logit", "softshrink", "hardshrink", "threshold",
    "rrelu", "log_sigmoid_forward", "log_sigmoid",
}
# Element-wise functions of several tensors that lack the ``pointwise`` tag (PReLU's
# per-channel slope is a second operand: its axis is tied to the input's channels).
MULTI_OPERAND = {"_prelu_kernel", "prelu"}
VIEW_IDENTITY = {
    "clone", "alias", "detach", "lift_fresh_copy", "_to_copy", "to", "contiguous", "dropout",
    "_softmax", "_log_softmax", "softmax", "log_softmax", "feature_dropout", "alpha_dropout",
    "_conj", "resolve_conj", "resolve_neg", "positive", "_safe_softmax",
}
CREATION = {
    "zeros", "ones", "full", "empty", "arange", "scalar_tensor", "new_zeros", "new_ones", "new_empty",
    "new_full", "zeros_like", "ones_like", "empty_like", "full_like", "rand", "randn", "rand_like",
    "randn_like", "randint", "linspace", "eye", "empty_strided", "new_empty_strided", "tensor", "sym_size",
    "sym_numel", "sym_stride", "_local_scalar_dense", "bernoulli",
}
SPATIAL = {
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_avg_pool3d", "_adaptive_avg_pool2d", "_adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "upsample_nearest1d",
    "upsample_nearest2d", "upsample_nearest3d", "upsample_bilinear2d", "upsample_linear1d",
    "upsample_bicubic2d", "upsample_trilinear3d", "_upsample_bilinear2d_aa", "_upsample_nearest_exact2d",
    "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d", "replication_pad2d",
    "replication_pad3d", "_adaptive_avg_pool2d_backward",
}
REDUCTIONS = {
    "sum", "mean", "amax", "amin", "var", "std", "logsumexp", "linalg_vector_norm", "norm", "prod",
    "any", "all", "nansum", "nanmean", "count_nonzero",
}
POSITIONAL_REDUCTIONS = {"argmax", "argmin", "max", "min", "sort", "topk", "cumsum", "cumprod", "cummax",
                         "cummin", "kthvalue", "median", "mode", "msort", "argsort", "logcumsumexp"}
BATCH_NORMS = {"native_batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
               "_native_batch_norm_legit_functional", "batch_norm"}
SDPA = {"_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_attention_math",
        "_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention",
        "scaled_dot_product_attention", "_scaled_dot_product_cudnn_attention"}


def _name(target: Any) -> str:
    packet = getattr(target, "overloadpacket", None)
    return packet.__name__ if packet is not None else getattr(target, "__name__", str(target))


def _bind(node: fx.Node) -> dict[str, Any]:
    """Arguments of an aten call by schema name (defaults filled in)."""
    schema = node.target._schema
    out: dict[str, Any] = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args):
            out[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            out[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            out[arg.name] = arg.default_value
        else:
            out[arg.name] = None
    return out


def _norm_dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def _axis_groups(in_shape: Sequence[int], out_shape: Sequence[int]) -> list[tuple[list[int], list[int]]] | None:
    """Pair up groups of input and output axes with equal products (size-1 axes go alone)."""
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    n_in, n_out = len(in_shape), len(out_shape)
    while i < n_in or j < n_out:
        if i < n_in and in_shape[i] == 1:
            groups.append(([i], []))
            i += 1
            continue
        if j < n_out and out_shape[j] == 1:
            groups.append(([], [j]))
            j += 1
            continue
        if i >= n_in or j >= n_out:
            return None
        gi, gj, pi, pj = [i], [j], in_shape[i], out_shape[j]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj:
                if i >= n_in:
                    return None
                pi *= in_shape[i]
                gi.append(i)
                i += 1
            else:
                if j >= n_out:
                    return None
                pj *= out_shape[j]
                gj.append(j)
                j += 1
        groups.append((gi, gj))
    return groups


class Propagator(fx.Interpreter):
    """Runs a traced graph on real tensors and computes every value's labels."""

    def __init__(self, gm: fx.GraphModule, state: LabelState, placeholder_params: list[int | None], strict: bool = True):
        super().__init__(gm)
        self.state = state
        self.labels: dict[fx.Node, Any] = {}
        self.placeholder_params = list(placeholder_params)
        self._placeholder_index = 0
        self.strict = strict
        self.first_use: dict[int, int] = {}
        self.param_of_node: dict[fx.Node, int] = {}
        self.step = 0

    # ----------------------------------------------------------------- plumbing
    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        if n.op == "placeholder":
            param = self.placeholder_params[self._placeholder_index]
            self._placeholder_index += 1
            if param is not None and isinstance(value, torch.Tensor) and value.is_floating_point():
                self.labels[n] = self.state.param_layers(param, tuple(value.shape))
                self.param_of_node[n] = param
            else:
                self.labels[n] = ()
        elif n.op == "get_attr":
            self.labels[n] = ()
        elif n.op == "call_function":
            self.step += 1
            for arg in n.all_input_nodes:
                p = self.param_of_node.get(arg)
                if p is not None and p not in self.first_use:
                    self.first_use[p] = self.step
            self.labels[n] = self._rule(n, value)
        elif n.op == "output":
            self._fix_all(n.args[0])
            self.labels[n] = ()
        else:
            raise UnsupportedModelError(f"unsupported graph node {n.op} {n.target}")
        return value

    def _fix_all(self, arg: Any) -> None:
        if isinstance(arg, fx.Node):
            for layer in self._flat_layers(self.labels.get(arg, ())):
                self.state.fix(layer.ids)
        elif isinstance(arg, (list, tuple)):
            for a in arg:
                self._fix_all(a)
        elif isinstance(arg, dict):
            for a in arg.values():
                self._fix_all(a)

    @staticmethod
    def _flat_layers(labels: Any) -> list[Layer]:
        if isinstance(labels, Layer):
            return [labels]
        out: list[Layer] = []
        if isinstance(labels, (list, tuple)):
            for item in labels:
                out += Propagator._flat_layers(item)
        return out

    def lab(self, arg: Any) -> Labels:
        """Canonical labels of a tensor argument (() for plain tensors and non-tensors)."""
        if not isinstance(arg, fx.Node):
            return ()
        labels = self.labels.get(arg, ())
        if not isinstance(labels, tuple) or (labels and not isinstance(labels[0], Layer)):
            return ()
        return tuple(Layer(layer.axes, self.state.canon(layer.ids)) for layer in labels)

    def val(self, arg: Any) -> Any:
        return self.env[arg] if isinstance(arg, fx.Node) else arg

    def shape(self, arg: Any) -> tuple[int, ...]:
        v = self.val(arg)
        return tuple(v.shape) if isinstance(v, torch.Tensor) else ()

    def _unsupported(self, n: fx.Node, why: str) -> Labels:
        message = f"cannot analyse operation aten.{_name(n.target)} ({n.name}): {why}"
        if self.strict:
            raise UnsupportedModelError(message + "; its axes cannot be given a function-preserving permutation")
        for arg in n.all_input_nodes:
            for layer in self.lab(arg):
                self.state.fix(layer.ids)
        return ()

    # ----------------------------------------------------------------- dispatch
    def _rule(self, n: fx.Node, value: Any) -> Any:
        target = n.target
        if target is operator.getitem:
            container = self.labels.get(n.args[0], ())
            if isinstance(container, (list, tuple)) and container and not isinstance(container[0], Layer):
                idx = n.args[1]
                return container[idx] if idx < len(container) else ()
            return ()
        if not isinstance(target, torch._ops.OpOverload):
            if all(not self.lab(a) for a in n.all_input_nodes):
                return ()
            return self._unsupported(n, f"python function {getattr(target, '__name__', target)}")
        name = _name(target)
        labelled = [a for a in n.all_input_nodes if self.lab(a)]
        if not labelled or name in CREATION:
            return self._plain_like(value)
        handler = getattr(self, f"_op_{name}", None)
        if handler is not None:
            return handler(n, value)
        if torch.Tag.pointwise in target.tags or name in MULTI_OPERAND:
            return self._pointwise(n, value)
        if name in VIEW_IDENTITY or name in UNARY:
            return self._identity(n)
        if name in SPATIAL:
            return self._spatial(n, value)
        if name in BATCH_NORMS:
            return self._batch_norm(n, value)
        if name in SDPA:
            return self._sdpa(n, value)
        if name in REDUCTIONS:
            return self._reduce(n, value)
        if name in POSITIONAL_REDUCTIONS:
            return self._positional(n, value)
        return self._unsupported(n, "no rule for this operation")

    @staticmethod
    def _plain_like(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(() for _ in value)
        return ()

    # ----------------------------------------------------------------- generic rules
    def merge(self, operands: list[tuple[Labels, tuple[int, ...]]], out_ndim: int) -> Labels:
        """Element-wise combination of operands (broadcasting)."""
        aligned = []
        for labels, shape in operands:
            off = out_ndim - len(shape)
            aligned.append(([lay.shifted(off) for lay in labels], (1,) * off + tuple(shape)))
        for i, (layers, _) in enumerate(aligned):
            for lay in layers:
                for d in lay.axes:
                    for j, (others, shape) in enumerate(aligned):
                        if j != i and shape[d] > 1 and not any(d in o.axes for o in others):
                            self.state.fix(lay.ids)
        for i in range(len(aligned)):
            for j in range(i + 1, len(aligned)):
                for a in aligned[i][0]:
                    for b in aligned[j][0]:
                        if a.axes & b.axes:
                            self.state.pair(a.ids, b.ids)
        out: list[Layer] = []
        for layers, _ in aligned:
            for lay in layers:
                if not any(o.axes == lay.axes for o in out):
                    out.append(lay)
        return tuple(Layer(lay.axes, self.state.canon(lay.ids)) for lay in out)

    def _pointwise(self, n: fx.Node, value: Any) -> Labels:
        tensors = [a for a in list(n.args) + list(n.kwargs.values()) if isinstance(a, fx.Node)]
        flat = []
        for a in list(n.args) + list(n.kwargs.values()):
            if isinstance(a, (list, tuple)):
                flat += [x for x in a if isinstance(x, fx.Node)]
        tensors += flat
        operands = [(self.lab(a), self.shape(a)) for a in tensors if isinstance(self.val(a), torch.Tensor)]
        out_ndim = value.dim() if isinstance(value, torch.Tensor) else max(len(s) for _, s in operands)
        return self.merge(operands, out_ndim)

    def _identity(self, n: fx.Node) -> Labels:
        return self.lab(n.args[0])

    # ----------------------------------------------------------------- views
    def _op_view(self, n: fx.Node, value: torch.Tensor) -> Labels:
        return self._reshape(self.lab(n.args[0]), self.shape(n.args[0]), tuple(value.shape), n)

    _op__unsafe_view = _op_view
    _op_reshape = _op_view
    _op_view_copy = _op_view
    _op__reshape_alias = _op_view
    _op_flatten = _op_view
    _op_unflatten = _op_view

    def _reshape(self, labels: Labels, in_shape: tuple[int, ...], out_shape: tuple[int, ...], n: fx.Node) -> Labels:
        groups = _axis_groups(in_shape, out_shape)
        if groups is None:
            return self._unsupported(n, f"reshape {in_shape} -> {out_shape}")
        out = []
        for lay in labels:
            red_in, red_out, owned_out = [1] * len(in_shape), [1] * len(out_shape), set()
            for gi, go in groups:
                if any(d in lay.axes for d in gi):
                    for d in gi:
                        red_in[d] = in_shape[d]
                    for d in go:
                        red_out[d] = out_shape[d]
                        if out_shape[d] > 1:
                            owned_out.add(d)
            ids = lay.ids.expand(red_in).reshape(red_out)
            # A group can mix data axes with owned ones (e.g. (N, B*H, d) -> (N*B, H*d)):
            # keep only the output axes along which the labels actually vary.
            for d in sorted(owned_out):
                if not bool((ids.narrow(d, 0, 1) != ids).any()):
                    ids = ids.narrow(d, 0, 1)
                    owned_out.discard(d)
            if owned_out:
                out.append(Layer(frozenset(owned_out), ids.contiguous()))
        return tuple(out)

    def _permute_axes(self, labels: Labels, dims: Sequence[int]) -> Labels:
        return tuple(Layer(frozenset(i for i, d in enumerate(dims) if d in lay.axes), lay.ids.permute(*dims))
                     for lay in labels)

    def _op_permute(self, n: fx.Node, value: torch.Tensor) -> Labels:
        ndim = len(self.shape(n.args[0]))
        return self._permute_axes(self.lab(n.args[0]), [_norm_dim(d, ndim) for d in n.args[1]])

    _op_permute_copy = _op_permute

    def _op_transpose(self, n: fx.Node, value: torch.Tensor) -> Labels:
        ndim = len(self.shape(n.args[0]))
        d0, d1 = _norm_dim(n.args[1], ndim), _norm_dim(n.args[2], ndim)
        dims = list(range(ndim))
        dims[d0], dims[d1] = dims[d1], dims[d0]
        return self._permute_axes(self.lab(n.args[0]), dims)

    _op_transpose_copy = _op_transpose

    def _op_t(self, n: fx.Node, value: torch.Tensor) -> Labels:
        ndim = len(self.shape(n.args[0]))
        return self._permute_axes(self.lab(n.args[0]), [1, 0] if ndim == 2 else list(range(ndim)))

    _op_numpy_T = _op_t

    def _op_unsqueeze(self, n: fx.Node, value: torch.Tensor) -> Labels:
        d = _norm_dim(n.args[1], value.dim())
        return tuple(Layer(frozenset(a + (a >= d) for a in lay.axes), lay.ids.unsqueeze(d))
                     for lay in self.lab(n.args[0]))

    _op_unsqueeze_copy = _op_unsqueeze

    def _op_squeeze(self, n: fx.Node, value: torch.Tensor) -> Labels:
        shape = self.shape(n.args[0])
        ndim = len(shape)
        if len(n.args) < 2:
            dims = [d for d, s in enumerate(shape) if s == 1]
        else:
            raw = n.args[1] if isinstance(n.args[1], (list, tuple)) else [n.args[1]]
            dims = [_norm_dim(d, ndim) for d in raw if shape[_norm_dim(d, ndim)] == 1]
        out = []
        for lay in self.lab(n.args[0]):
            ids = lay.ids
            for d in sorted(dims, reverse=True):
                ids = ids.squeeze(d)
            axes = frozenset(a - sum(1 for d in dims if d < a) for a in lay.axes if a not in dims)
            if axes:
                out.append(Layer(axes, ids))
        return tuple(out)

    _op_squeeze_copy = _op_squeeze

    def _op_expand(self, n: fx.Node, value: torch.Tensor) -> Labels:
        off = value.dim() - len(self.shape(n.args[0]))
        return tuple(lay.shifted(off) for lay in self.lab(n.args[0]))

    _op_expand_copy = _op_expand
    _op_expand_as = _op_expand
    _op_broadcast_to = _op_expand

    def _op_slice(self, n: fx.Node, value: torch.Tensor) -> Labels:
        b = _bind(n)
        shape = self.shape(b["self"])
        dim = _norm_dim(b["dim"], len(shape))
        out = []
        for lay in self.lab(b["self"]):
            if dim in lay.axes:
                start = b["start"] if b["start"] is not None else 0
                end = b["end"] if b["end"] is not None else shape[dim]
                end = min(end, shape[dim])
                idx = torch.arange(shape[dim])[slice(start, end, b["step"])]
                ids = lay.ids.index_select(dim, idx)
                axes = lay.axes if ids.shape[dim] > 1 else lay.axes - {dim}
                if axes:
                    out.append(Layer(axes, ids))
            else:
                out.append(lay)
        return tuple(out)

    _op_slice_copy = _op_slice

    def _op_narrow(self, n: fx.Node, value: torch.Tensor) -> Labels:
        shape = self.shape(n.args[0])
        dim = _norm_dim(n.args[1], len(shape))
        start, length = n.args[2], n.args[3]
        out = []
        for lay in self.lab(n.args[0]):
            if dim in lay.axes:
                ids = lay.ids.narrow(dim, start, length)
                axes = lay.axes if length > 1 else lay.axes - {dim}
                if axes:
                    out.append(Layer(axes, ids))
            else:
                out.append(lay)
        return tuple(out)

    def _select_layers(self, labels: Labels, dim: int, index: int) -> Labels:
        out = []
        for lay in labels:
            ids = lay.ids.select(dim, index if dim in lay.axes else 0)
            axes = frozenset(a - (a > dim) for a in lay.axes if a != dim)
            if axes:
                out.append(Layer(axes, ids))
        return tuple(out)

    def _op_select(self, n: fx.Node, value: torch.Tensor) -> Labels:
        shape = self.shape(n.args[0])
        dim = _norm_dim(n.args[1], len(shape))
        index = n.args[2] + shape[dim] if n.args[2] < 0 else n.args[2]
        return self._select_layers(self.lab(n.args[0]), dim, index)

    _op_select_copy = _op_select

    def _op_unbind(self, n: fx.Node, value: Any) -> tuple:
        shape = self.shape(n.args[0])
        dim = _norm_dim(n.args[1] if len(n.args) > 1 else 0, len(shape))
        labels = self.lab(n.args[0])
        return tuple(self._select_layers(labels, dim, i) for i in range(shape[dim]))

    _op_unbind_copy = _op_unbind

    def _op_split_with_sizes(self, n: fx.Node, value: Any) -> tuple:
        shape = self.shape(n.args[0])
        dim = _norm_dim(n.args[2] if len(n.args) > 2 else n.kwargs.get("dim", 0), len(shape))
        sizes = [v.shape[dim] for v in value]
        labels, pieces, start = self.lab(n.args[0]), [], 0
        for size in sizes:
            piece = []
            for lay in labels:
                if dim in lay.axes:
                    ids = lay.ids.narrow(dim, start, size)
                    axes = lay.axes if size > 1 else lay.axes - {dim}
                    if axes:
                        piece.append(Layer(axes, ids))
                else:
                    piece.append(lay)
            pieces.append(tuple(piece))
            start += size
        return tuple(pieces)

    _op_split = _op_split_with_sizes
    _op_split_copy = _op_split_with_sizes
    _op_split_with_sizes_copy = _op_split_with_sizes
    _op_chunk = _op_split_with_sizes
    _op_tensor_split = _op_split_with_sizes

    def _op_index_select(self, n: fx.Node, value: torch.Tensor) -> Labels:
        shape = self.shape(n.args[0])
        dim = _norm_dim(n.args[1], len(shape))
        index = self.val(n.args[2])
        return tuple(Layer(lay.axes, lay.ids.index_select(dim, index)) if dim in lay.axes else lay
                     for lay in self.lab(n.args[0]))

    def _op_index(self, n: fx.Node, value: torch.Tensor) -> Labels:
        labels, shape = self.lab(n.args[0]), self.shape(n.args[0])
        indices = [self.val(i) if i is not None else None for i in n.args[1]]
        if sum(i is not None for i in indices) == 1:
            dim = next(d for d, i in enumerate(indices) if i is not None)
            index = indices[dim]
            if index.dim() == 1 and index.dtype != torch.bool:
                return tuple(Layer(lay.axes, lay.ids.index_select(dim, index % shape[dim])) if dim in lay.axes
                             else lay for lay in labels)
        owned = {a for lay in labels for a in lay.axes}
        if not any(i is not None and d in owned for d, i in enumerate(indices)):
            # Indexing only data axes: labels are constant there; find where the owned axes went.
            probe = torch.arange(int(np.prod(shape))).reshape(shape)
            picked = probe[tuple(indices)]
            return self._from_probe(labels, shape, picked, n)
        return self._unsupported(n, "advanced indexing along a permutable axis")

    def _from_probe(self, labels: Labels, shape: tuple[int, ...], picked: torch.Tensor, n: fx.Node) -> Labels:
        """Labels of a gather described by flat source positions ``picked``."""
        out = []
        for lay in labels:
            full = lay.ids.expand(shape).reshape(-1)[picked.reshape(-1)].reshape(picked.shape)
            axes = {d for d in range(full.dim()) if full.shape[d] > 1
                    and not bool((full.narrow(d, 0, 1) == full).all())}
            if axes:
                out.append(self.state.collapse(Layer(frozenset(axes), full)))
        return tuple(out)

    def _op_gather(self, n: fx.Node, value: torch.Tensor) -> Labels:
        shape = self.shape(n.args[0])
        dim = _norm_dim(n.args[1], len(shape))
        labels = self.lab(n.args[0])
        if any(dim in lay.axes for lay in labels):
            return self._unsupported(n, "gather along a permutable axis")
        index = self.val(n.args[2])
        if any(index.shape[a] != shape[a] for lay in labels for a in lay.axes):
            return self._unsupported(n, "gather that drops part of a permutable axis")
        return labels

    def _op_cat(self, n: fx.Node, value: torch.Tensor) -> Labels:
        inputs = [a for a in n.args[0] if isinstance(self.val(a), torch.Tensor) and self.val(a).numel() > 0]
        ndim = value.dim()
        dim = _norm_dim(n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0), ndim)
        return self._concat([(self.lab(a), self.shape(a)) for a in inputs], dim, ndim)

    _op_concat = _op_cat
    _op_concatenate = _op_cat

    def _concat(self, operands: list[tuple[Labels, tuple[int, ...]]], dim: int, ndim: int) -> Labels:
        # Layers not owning the concatenated axis: the same unit on both sides (like an add).
        flat_ops = []
        for labels, shape in operands:
            shape = list(shape)
            shape[dim] = 1
            flat_ops.append((tuple(lay for lay in labels if dim not in lay.axes), tuple(shape)))
        out = list(self.merge(flat_ops, ndim))
        # Layers owning it: concatenate the ids; inputs without such a layer contribute fixed positions.
        owning_sets = []
        for labels, _ in operands:
            for lay in labels:
                if dim in lay.axes and lay.axes not in owning_sets:
                    owning_sets.append(lay.axes)
        for axes in owning_sets:
            ref = next(lay for labels, _ in operands for lay in labels if lay.axes == axes)
            pieces = []
            for labels, shape in operands:
                lay = next((x for x in labels if x.axes == axes), None)
                if lay is None:
                    size = list(ref.ids.shape)
                    size[dim] = shape[dim]
                    pieces.append(torch.zeros(size, dtype=torch.int64))
                else:
                    pieces.append(lay.ids.expand([max(a, b) if d != dim else a for d, (a, b) in
                                                  enumerate(zip(lay.ids.shape, ref.ids.shape))]))
            out.append(Layer(axes, torch.cat(pieces, dim)))
        return tuple(out)

    def _op_stack(self, n: fx.Node, value: torch.Tensor) -> Labels:
        ndim = value.dim()
        dim = _norm_dim(n.args[1] if len(n.args) > 1 else 0, ndim)
        operands = []
        for a in n.args[0]:
            labels = tuple(Layer(frozenset(x + (x >= dim) for x in lay.axes), lay.ids.unsqueeze(dim))
                           for lay in self.lab(a))
            shape = list(self.shape(a))
            shape.insert(dim, 1)
            operands.append((labels, tuple(shape)))
        return self._concat(operands, dim, ndim)

    def _op_flip(self, n: fx.Node, value: torch.Tensor) -> Labels:
        ndim = value.dim()
        dims = [_norm_dim(d, ndim) for d in n.args[1]]
        return tuple(Layer(lay.axes, lay.ids.flip([d for d in dims if d in lay.axes]) if any(d in lay.axes for d in dims)
                           else lay.ids) for lay in self.lab(n.args[0]))

    def _op_roll(self, n: fx.Node, value: torch.Tensor) -> Labels:
        ndim = value.dim()
        shifts, dims = list(n.args[1]), list(n.args[2]) if len(n.args) > 2 else []
        if not dims:
            return self._unsupported(n, "roll of the flattened tensor")
        out = []
        for lay in self.lab(n.args[0]):
            ids = lay.ids
            for s, d in zip(shifts, dims):
                d = _norm_dim(d, ndim)
                if d in lay.axes:
                    ids = ids.roll(s, d)
            out.append(Layer(lay.axes, ids))
        return tuple(out)

    def _op_repeat(self, n: fx.Node, value: torch.Tensor) -> Labels:
        repeats = list(n.args[1])
        off = len(repeats) - len(self.shape(n.args[0]))
        out = []
        for lay in self.lab(n.args[0]):
            lay = lay.shifted(off)
            reps = [r if d in lay.axes else 1 for d, r in enumerate(repeats)]
            out.append(Layer(lay.axes, lay.ids.repeat(reps)))
        return tuple(out)

    def _op_constant_pad_nd(self, n: fx.Node, value: torch.Tensor) -> Labels:
        pad = list(n.args[1])
        ndim = value.dim()
        out = []
        for lay in self.lab(n.args[0]):
            own_pad = []
            for k in range(len(pad) // 2):
                d = ndim - 1 - k
                own_pad += pad[2 * k:2 * k + 2] if d in lay.axes else [0, 0]
            ids = F.pad(lay.ids, own_pad, value=0) if any(own_pad) else lay.ids
            out.append(Layer(lay.axes, ids))
        return tuple(out)

    def _op_copy(self, n: fx.Node, value: torch.Tensor) -> Labels:
        src = n.args[1]
        off = value.dim() - len(self.shape(src))
        return tuple(lay.shifted(off) for lay in self.lab(src))

    def _op_triu(self, n: fx.Node, value: torch.Tensor) -> Labels:
        labels = self.lab(n.args[0])
        ndim = value.dim()
        for lay in labels:
            if lay.axes & {ndim - 1, ndim - 2}:
                self.state.fix(lay.ids)
        return labels

    _op_tril = _op_triu

    # ----------------------------------------------------------------- contractions
    def matmul_labels(self, la: Labels, sa: tuple[int, ...], lb: Labels, sb: tuple[int, ...], tag: str = "head") -> Labels:
        """Labels of ``a @ b`` for ``a`` (..., n, k) and ``b`` (..., k, m)."""
        nd = max(len(sa), len(sb))
        la = [lay.shifted(nd - len(sa)) for lay in la]
        lb = [lay.shifted(nd - len(sb)) for lay in lb]
        sa, sb = (1,) * (nd - len(sa)) + tuple(sa), (1,) * (nd - len(sb)) + tuple(sb)
        ka, kb = nd - 1, nd - 2
        ca = [lay for lay in la if ka in lay.axes]
        cb = [lay for lay in lb if kb in lay.axes]
        if ca and not cb and sb[kb] > 1:
            for lay in ca:
                self.state.fix(lay.ids)
        if cb and not ca and sa[ka] > 1:
            for lay in cb:
                self.state.fix(lay.ids)
        for a in ca:
            for b in cb:
                self.state.pair(a.ids.unsqueeze(-1), b.ids.unsqueeze(-3))
        out_a: list[Layer] = []
        out_b: list[Layer] = []
        for lay in ca:
            block = self.state.blocks_over(lay, {ka}, tag)
            if block is not None:
                out_a.append(block)
        for lay in cb:
            block = self.state.blocks_over(lay, {kb}, tag)
            if block is not None:
                out_b.append(block)
        out_a += [lay for lay in la if ka not in lay.axes]
        out_b += [lay for lay in lb if kb not in lay.axes]
        shape_a = sa[:-1] + (1,)
        shape_b = sb[:-2] + (1, sb[-1])
        return self.merge([(tuple(out_a), shape_a), (tuple(out_b), shape_b)], nd)

    def _op_mm(self, n: fx.Node, value: torch.Tensor) -> Labels:
        a, b = n.args[0], n.args[1]
        return self.matmul_labels(self.lab(a), self.shape(a), self.lab(b), self.shape(b))

    _op_bmm = _op_mm
    _op_matmul = _op_mm

    def _op_addmm(self, n: fx.Node, value: torch.Tensor) -> Labels:
        bias, a, b = n.args[0], n.args[1], n.args[2]
        prod = self.matmul_labels(self.lab(a), self.shape(a), self.lab(b), self.shape(b))
        return self.merge([(prod, tuple(value.shape)), (self.lab(bias), self.shape(bias))], value.dim())

    _op_baddbmm = _op_addmm

    def _op_mv(self, n: fx.Node, value: torch.Tensor) -> Labels:
        a, v = n.args[0], n.args[1]
        lv = tuple(Layer(frozenset(x for x in lay.axes), lay.ids.unsqueeze(-1)) for lay in self.lab(v))
        out = self.matmul_labels(self.lab(a), self.shape(a), lv, self.shape(v) + (1,))
        return tuple(Layer(lay.axes - {1}, lay.ids.squeeze(-1)) for lay in out if lay.axes - {1})

    def _op_dot(self, n: fx.Node, value: torch.Tensor) -> Labels:
        a, b = n.args[0], n.args[1]
        la = tuple(Layer(frozenset({1}), lay.ids.unsqueeze(0)) for lay in self.lab(a))
        lb = tuple(Layer(frozenset({0}), lay.ids.unsqueeze(-1)) for lay in self.lab(b))
        self.matmul_labels(la, (1,) + self.shape(a), lb, self.shape(b) + (1,))
        return ()

    _op_vdot = _op_dot

    def _op_convolution(self, n: fx.Node, value: torch.Tensor) -> Labels:
        b = _bind(n)
        x, w, bias = b["input"], b["weight"], b["bias"]
        groups, transposed = int(b.get("groups") or 1), bool(b.get("transposed"))
        lx, lw, sx = self.lab(x), self.lab(w), self.shape(x)
        in_axis, out_axis = (0, 1) if transposed else (1, 0)
        if transposed and groups != 1:
            return self._unsupported(n, "grouped transposed convolution")
        for lay in lx:
            if lay.axes - {1}:
                return self._unsupported(n, "convolution input whose labels vary along spatial axes")
        w_in = [lay for lay in lw if in_axis in lay.axes]
        w_out = [lay for lay in lw if out_axis in lay.axes]
        for lay in lw:  # kernel positions never move
            if lay.axes - {0, 1}:
                self.state.fix(lay.ids)
        x_ch = [lay for lay in lx if 1 in lay.axes]
        c_in, c_out, ndim = sx[1], value.shape[1], value.dim()

        def as_channel(lay: Layer, axis: int) -> torch.Tensor:
            shape = [1] * ndim
            shape[1] = lay.ids.shape[axis]
            return lay.ids.reshape(-1).reshape(shape) if lay.ids.numel() == lay.ids.shape[axis] else \
                lay.ids.movedim(axis, 1).reshape(shape)

        if groups == 1:
            if not x_ch and c_in > 1:
                for lay in w_in:
                    self.state.fix(lay.ids)
            for a in x_ch:
                for lay in w_in:
                    self.state.pair(a.ids.reshape(1, -1), as_channel(lay, in_axis).reshape(1, -1))
        else:
            per_in, per_out = c_in // groups, c_out // groups
            block = torch.from_numpy(self.state.new_blocks(groups, "group"))
            if per_in > 1:
                for lay in w_in:
                    self.state.fix(lay.ids)
            if x_ch:
                for a in x_ch:
                    self.state.pair(a.ids.reshape(-1), block.repeat_interleave(per_in))
                    if per_in > 1:
                        self.state.freeze(a.ids)
            elif c_in > 1:
                self.state.fix(block)
            for lay in w_out:
                self.state.pair(as_channel(lay, out_axis).reshape(-1), block.repeat_interleave(per_out))
        outs = [(tuple(Layer(frozenset({1}), as_channel(lay, out_axis)) for lay in w_out), (1, c_out) + (1,) * (ndim - 2))]
        if isinstance(bias, fx.Node):
            outs.append((tuple(Layer(frozenset({1}), lay.ids.reshape([1, -1] + [1] * (ndim - 2)))
                               for lay in self.lab(bias)), (1, c_out) + (1,) * (ndim - 2)))
        return self.merge(outs, ndim)

    _op__convolution = _op_convolution

    def _sdpa(self, n: fx.Node, value: Any) -> Any:
        b = _bind(n)
        q, k, v = b["query"], b["key"], b["value"]
        lq, lk, lv = self.lab(q), self.lab(k), self.lab(v)
        sq, sk, sv = self.shape(q), self.shape(k), self.shape(v)
        nd = len(sk)
        perm = list(range(nd))
        perm[-1], perm[-2] = perm[-2], perm[-1]
        lkt = self._permute_axes(lk, perm)
        skt = tuple(sk[p] for p in perm)
        scores = self.matmul_labels(lq, sq, lkt, skt)
        s_shape = sq[:-1] + (skt[-1],)
        mask = b.get("attn_mask", b.get("attn_bias"))
        if isinstance(mask, fx.Node):
            scores = self.merge([(scores, s_shape), (self.lab(mask), self.shape(mask))], len(s_shape))
        out = self.matmul_labels(scores, s_shape, lv, sv)
        if isinstance(value, (list, tuple)):
            return (out,) + tuple(() for _ in value[1:])
        return out

    # ----------------------------------------------------------------- normalisation
    def _channel_param(self, arg: Any, ndim: int) -> tuple[Labels, tuple[int, ...]]:
        """A (C,) parameter viewed as (1, C, 1, ...)."""
        if not isinstance(arg, fx.Node):
            return (), ()
        shape = [1] * ndim
        c = self.shape(arg)[0]
        shape[1] = c
        return tuple(Layer(frozenset({1}), lay.ids.reshape(shape)) for lay in self.lab(arg)), tuple(shape)

    def _batch_norm(self, n: fx.Node, value: Any) -> Any:
        x = n.args[0]
        ndim = len(self.shape(x))
        operands = [(self.lab(x), self.shape(x))]
        for arg in n.args[1:5]:
            if isinstance(arg, fx.Node):
                operands.append(self._channel_param(arg, ndim))
        out = self.merge(operands, ndim)
        return (out,) + tuple(() for _ in value[1:]) if isinstance(value, (list, tuple)) else out

    def _op_native_layer_norm(self, n: fx.Node, value: Any) -> Any:
        x, w, bias = n.args[0], n.args[2], n.args[3]
        operands = [(self.lab(x), self.shape(x))]
        for arg in (w, bias):
            if isinstance(arg, fx.Node):
                operands.append((self.lab(arg), self.shape(arg)))
        out = self.merge(operands, len(self.shape(x)))
        return (out, (), ())

    def _op_native_group_norm(self, n: fx.Node, value: Any) -> Any:
        x, w, bias = n.args[0], n.args[1], n.args[2]
        n_groups = int(n.args[6])
        shape = self.shape(x)
        ndim, c = len(shape), shape[1]
        operands = [(self.lab(x), shape)] + [self._channel_param(a, ndim) for a in (w, bias) if isinstance(a, fx.Node)]
        out = self.merge(operands, ndim)
        if 1 < n_groups < c:
            block = torch.from_numpy(self.state.new_blocks(n_groups, "group")).repeat_interleave(c // n_groups)
            for lay in out:
                if 1 in lay.axes:
                    self.state.pair(lay.ids.reshape(-1), block)
        return (out, (), ())

    def _op_embedding(self, n: fx.Node, value: torch.Tensor) -> Labels:
        w = n.args[0]
        out = []
        for lay in self.lab(w):
            if 0 in lay.axes:
                self.state.fix(lay.ids)  # vocabulary rows are addressed by the data
            if 1 in lay.axes:
                ids = lay.ids.reshape([1] * (value.dim() - 1) + [-1])
                out.append(Layer(frozenset({value.dim() - 1}), ids))
        return tuple(out)

    # ----------------------------------------------------------------- pooling, reductions
    def _spatial(self, n: fx.Node, value: Any) -> Any:
        labels = self.lab(n.args[0])
        for lay in labels:
            if lay.axes - {0, 1}:
                return self._unsupported(n, "spatial operation on an axis that can be permuted")
        if isinstance(value, (list, tuple)):
            return (labels,) + tuple(() for _ in value[1:])
        return labels

    def _reduce(self, n: fx.Node, value: Any) -> Any:
        x = n.args[0]
        shape = self.shape(x)
        ndim = len(shape)
        b = _bind(n)
        raw = b.get("dim")
        if raw is None or raw == []:
            dims = set(range(ndim))
        else:
            dims = {_norm_dim(d, ndim) for d in (raw if isinstance(raw, (list, tuple)) else [raw])}
        keepdim = bool(b.get("keepdim") or False)
        out = []
        for lay in self.lab(x):
            if lay.axes & dims:
                block = self.state.blocks_over(lay, dims, "reduce")
                if block is None:
                    continue
                lay = block
            ids = lay.ids
            if not keepdim:
                for d in sorted(dims, reverse=True):
                    ids = ids.squeeze(d) if ids.dim() > d else ids
                axes = frozenset(a - sum(1 for d in dims if d < a) for a in lay.axes)
            else:
                axes = lay.axes
            out.append(Layer(axes, ids))
        result = tuple(out)
        if isinstance(value, (list, tuple)):
            return (result,) + tuple(() for _ in value[1:])
        return result

    def _positional(self, n: fx.Node, value: Any) -> Any:
        """Operations whose result depends on positions along the axis (argmax, sort, cumsum...)."""
        x = n.args[0]
        ndim = len(self.shape(x))
        b = _bind(n)
        raw = b.get("dim")
        dims = set(range(ndim)) if raw is None else {_norm_dim(d, ndim) for d in (raw if isinstance(raw, (list, tuple)) else [raw])}
        for lay in self.lab(x):
            if lay.axes & dims:
                self.state.fix(lay.ids)
        return self._plain_like(value)

    def _op_max(self, n: fx.Node, value: Any) -> Any:
        overload = n.target._overloadname
        if overload in ("other", "out"):
            return self._pointwise(n, value)
        uses_indices = any(u.target is operator.getitem and u.args[1] == 1 for u in n.users)
        if overload == "dim" and uses_indices:
            return self._positional(n, value)
        return self._reduce(n, value)

    _op_min = _op_max

    def _op_native_dropout(self, n: fx.Node, value: Any) -> Any:
        return (self.lab(n.args[0]), ())
