"""Perturbations of a model's weights: the attacks of "Find the Lady" (REFERENCE §1).

One function per attack, all with the same signature (torchattacks-style)::

    attack(model, level, layers, *, seed=0, **options) -> {layer_name: details}

acting **in place** on the named layers, plus :func:`perturb`, which validates the
level, picks the layers, works on a copy, summarises what changed per layer and
records the operation in the model's metadata history.

=========  =====  ===========================================================  ============
attack     level  definition                                                    valid range
=========  =====  ===========================================================  ============
noise      Omega  W += N(0, (Omega * sigma_l)^2), sigma_l = population std of W  Omega >= 0
quantize   B      per-tensor asymmetric min-max fake-quantisation of W          1..32 bits
prune      T      zero the round(T * n) smallest |w| (per layer, or global)     0 <= T < 1
finetune   Theta  resume the model's recipe for Theta % of its epochs           Theta > 0
scale      K      multiply chosen output neurons (rows of W and b) by K         finite, != 0
=========  =====  ===========================================================  ============

Biases are untouched except by ``scale`` (a neuron's bias scales with its row) and
``finetune`` (which trains every chosen parameter).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .errors import ConfigError, UnknownNameError, UnsupportedModelError
from .io.meta import ModelMeta
from .models.loading import LoadedModel
from .models.layers import resolve_layers
from .utils.seeding import torch_generator

#: A perturbation: ``fn(model, level, layers, *, seed, **options) -> {layer: details}`` (in place).
AttackFn = Callable[..., dict[str, dict[str, Any]]]

QUANTIZE_BITS = (1, 32)


# ----------------------------------------------------------------- helpers

def _module(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name)


def _weight(model: nn.Module, name: str) -> torch.Tensor:
    """The ``weight`` parameter of layer ``name`` (error if it has none)."""
    weight = getattr(_module(model, name), "weight", None)
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise ConfigError(f"layer {name!r} has no floating-point weight to perturb")
    return weight


def output_axis(module: nn.Module) -> int:
    """Axis of ``module.weight`` indexing output neurons (1 for transposed convolutions)."""
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        if module.groups != 1:
            raise UnsupportedModelError("scaling neurons of a grouped transposed convolution is not supported")
        return 1
    return 0


# ----------------------------------------------------------------- the attacks

@torch.no_grad()
def add_noise(model: nn.Module, level: float, layers: Sequence[str], *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Gaussian noise ``W += N(0, (level * sigma_l)^2)`` with ``sigma_l = W.std(unbiased=False)``.

    The noise of each layer is drawn from a CPU generator seeded by ``(seed, layer)``
    (so it does not depend on the device or on which other layers are chosen) and
    added on the weight's own device.
    """
    details = {}
    for name in layers:
        weight = _weight(model, name)
        sigma = float(weight.detach().double().std(unbiased=False)) if weight.numel() > 1 else 0.0
        std = level * sigma
        if std > 0:
            noise = torch.randn(weight.shape, generator=torch_generator("noise", seed, name), dtype=torch.float32)
            weight.add_(noise.to(device=weight.device, dtype=weight.dtype) * std)
        details[name] = {"sigma": sigma, "noise_std": std}
    return details


def quantize_tensor(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Uniform asymmetric min-max fake quantisation of one tensor.

    ``qmax = 2^bits - 1``, ``scale = qmax / (max - min)``,
    ``q = round(clamp((x - min) * scale, 0, qmax))``, ``x_hat = q / scale + min``,
    computed in float64 (exact for 32 bits) and returned in ``x``'s dtype and shape.
    A constant tensor (max == min) is returned unchanged.
    """
    xd = x.detach().double()
    lo, hi = xd.min(), xd.max()
    if not bool(hi > lo):
        return x.detach().clone()
    qmax = float(2**bits - 1)
    scale = qmax / (hi - lo)
    q = torch.round(torch.clamp((xd - lo) * scale, 0.0, qmax))
    return (q / scale + lo).to(x.dtype)


@torch.no_grad()
def quantize(model: nn.Module, level: int, layers: Sequence[str], *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Fake-quantise each chosen layer's weight to ``level`` bits (biases untouched; ``seed`` unused)."""
    details = {}
    for name in layers:
        weight = _weight(model, name)
        weight.copy_(quantize_tensor(weight, int(level)))
        details[name] = {"bits": int(level), "min": float(weight.min()), "max": float(weight.max()),
                         "distinct_values": int(torch.unique(weight).numel())}
    return details


def _smallest(magnitudes: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` smallest entries of a 1-D tensor; ties go to the lower index."""
    return torch.argsort(magnitudes, stable=True)[:count]


@torch.no_grad()
def prune(
    model: nn.Module, level: float, layers: Sequence[str], *, seed: int = 0, global_prune: bool = False,
) -> dict[str, dict[str, Any]]:
    """L1-unstructured magnitude pruning: zero exactly ``round(level * n)`` smallest ``|w|``.

    Per layer by default; with ``global_prune`` one ranking (one threshold) over the
    weights of all chosen layers together. Ties are broken by position (layer order,
    then flat index), so the result is deterministic; ``seed`` is unused.
    """
    weights = [_weight(model, name) for name in layers]
    if global_prune:
        flat = torch.cat([w.detach().abs().flatten().double().cpu() for w in weights])
        mask = torch.ones_like(flat, dtype=torch.bool)
        mask[_smallest(flat, round(level * flat.numel()))] = False
        masks = torch.split(mask, [w.numel() for w in weights])
    else:
        masks = []
        for w in weights:
            flat = w.detach().abs().flatten().double().cpu()
            mask = torch.ones_like(flat, dtype=torch.bool)
            mask[_smallest(flat, round(level * flat.numel()))] = False
            masks.append(mask)
    details = {}
    for name, w, mask in zip(layers, weights, masks):
        w.mul_(mask.view(w.shape).to(device=w.device, dtype=w.dtype))
        details[name] = {"pruned": int((~mask).sum()), "sparsity": float((w == 0).double().mean()),
                         "global": bool(global_prune)}
    return details


@torch.no_grad()
def scale_neurons(
    model: nn.Module,
    level: float,
    layers: Sequence[str],
    *,
    seed: int = 0,
    neurons: Sequence[int] | None = None,
    fraction: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Multiply chosen output neurons (their weight rows and biases) by ``level``.

    Neurons: the indices ``neurons`` (the same in every chosen layer), or a random
    ``fraction`` of each layer's neurons drawn from ``(seed, layer)``, or all of them.
    The cosine similarity of a scaled neuron to its original is still 1 (the paper's
    integrity attack).
    """
    details = {}
    for name in layers:
        module = _module(model, name)
        weight = _weight(model, name)
        axis = output_axis(module)
        n_out = weight.shape[axis]
        idx = _chosen_neurons(name, n_out, seed, neurons, fraction)
        index: list[Any] = [slice(None)] * weight.dim()
        index[axis] = idx.to(weight.device)
        weight[tuple(index)] = weight[tuple(index)] * level
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor) and bias.shape == (n_out,):
            bias[idx.to(bias.device)] = bias[idx.to(bias.device)] * level
        details[name] = {"factor": float(level), "neurons": idx.tolist(), "n_scaled": int(idx.numel()),
                         "n_neurons": int(n_out)}
    return details


def _chosen_neurons(
    layer: str, n_out: int, seed: int, neurons: Sequence[int] | None, fraction: float | None,
) -> torch.Tensor:
    """Sorted int64 indices of the neurons to scale in a layer of ``n_out`` neurons."""
    if neurons is not None:
        bad = [i for i in neurons if not 0 <= int(i) < n_out]
        if bad:
            raise ConfigError(f"neuron index {bad[0]} is out of range for layer {layer!r} "
                              f"({n_out} neurons: valid 0..{n_out - 1})")
        return torch.tensor(sorted(set(int(i) for i in neurons)), dtype=torch.long)
    if fraction is not None:
        count = max(1, round(fraction * n_out))
        perm = torch.randperm(n_out, generator=torch_generator("scale", seed, layer))
        return torch.sort(perm[:count]).values
    return torch.arange(n_out)


def finetune(
    model: nn.Module,
    level: float,
    layers: Sequence[str],
    *,
    seed: int = 0,
    data: Any = None,
    meta: ModelMeta | None = None,
    device: str | torch.device | None = None,
    quiet: bool = True,
) -> dict[str, dict[str, Any]]:
    """Resume the model's own training recipe for ``level`` % of its original epochs.

    The recipe comes from ``meta.recipe`` (see :func:`nnforensics.training.finetune_recipe`:
    the final learning rate, no schedule, a data order drawn from ``seed``). Only the
    parameters of ``layers`` are trained; the others are frozen for the run (BatchNorm
    running statistics of every layer still update, as in any training step).

    Args:
        data: dataset spec (``"digits"``, ``"mnist:PATH"``...) or an ``ArrayDataset``
            (its training split is used).
        meta: the model's metadata (recipe and input normalisation).
    """
    from .data.registry import ArrayDataset, load_dataset
    from .training import Recipe, finetune_recipe, train

    if meta is None or not meta.recipe:
        raise ConfigError("fine-tuning resumes the model's training recipe, but the model's metadata records none "
                          "(train it with `nnf train`, or use another attack)")
    if data is None:
        raise ConfigError("fine-tuning needs training data: pass --data NAME[:PATH]")
    train_data = data if isinstance(data, ArrayDataset) else load_dataset(str(data), "train")
    recipe = finetune_recipe(Recipe.from_dict(meta.recipe), level / 100.0, seed)
    if recipe.augment and train_data.info.augment == "none":
        recipe.augment = False
    chosen = {id(p) for name in layers for p in _module(model, name).parameters(recurse=False)}
    flags = {p: p.requires_grad for p in model.parameters()}
    try:
        for p in model.parameters():
            p.requires_grad_(id(p) in chosen and flags[p])
        dev = device if device is not None else _model_device(model)
        norm = meta.normalization if meta.normalization is not None else train_data.info.normalization
        result = train(model, train_data, recipe, normalization=norm, device=dev, quiet=quiet,
                       description="finetune")
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
    summary = {"epochs": recipe.epochs, "steps": result.steps, "lr": recipe.lr, "dataset": train_data.info.name,
               "train_images": len(train_data)}
    return {name: dict(summary) for name in layers}


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


#: Registered perturbations (``nnf perturb --ATTACK LEVEL``).
ATTACKS: dict[str, AttackFn] = {
    "noise": add_noise,
    "quantize": quantize,
    "prune": prune,
    "finetune": finetune,
    "scale": scale_neurons,
}


# ----------------------------------------------------------------- validation

def validate_level(attack: str, level: float) -> float | int:
    """The level as the attack uses it (``int`` bits for quantize), or a ConfigError naming the range."""
    if attack not in ATTACKS:
        raise UnknownNameError("attack", attack, ATTACKS)
    try:
        value = float(level)
    except (TypeError, ValueError):
        raise ConfigError(f"{attack} level must be a number, got {level!r}") from None
    if attack == "noise":
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"noise level Omega must be a finite number >= 0 (e.g. 0..10), got {level}")
        return value
    if attack == "quantize":
        lo, hi = QUANTIZE_BITS
        if not (math.isfinite(value) and value == int(value) and lo <= value <= hi):
            raise ConfigError(f"quantize level B must be an integer number of bits in {lo}..{hi}, got {level}")
        return int(value)
    if attack == "prune":
        if not (math.isfinite(value) and 0 <= value < 1):
            raise ConfigError(f"prune level T must be a fraction with 0 <= T < 1 (e.g. 0.9..0.99), got {level}")
        return value
    if attack == "finetune":
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"finetune level Theta must be a percentage of the original epochs > 0 "
                              f"(e.g. 2..10), got {level}")
        return value
    if not (math.isfinite(value) and value != 0):  # scale
        raise ConfigError(f"scale level K must be a finite, non-zero factor (e.g. 0.5..2), got {level}")
    return value


def _validate_options(
    attack: str, global_prune: bool, neurons: Sequence[int] | None, fraction: float | None, data: Any,
) -> None:
    if global_prune and attack != "prune":
        raise ConfigError("global pruning (--global) applies only to the prune attack")
    if (neurons is not None or fraction is not None) and attack != "scale":
        raise ConfigError("--neurons / --fraction apply only to the scale attack")
    if neurons is not None and fraction is not None:
        raise ConfigError("give either neurons or a fraction of neurons, not both")
    if neurons is not None and len(neurons) == 0:
        raise ConfigError("the list of neurons to scale is empty")
    if fraction is not None and not (math.isfinite(fraction) and 0 < fraction <= 1):
        raise ConfigError(f"the fraction of neurons must be in (0, 1], got {fraction}")
    if data is not None and attack != "finetune":
        raise ConfigError("training data (--data) is used only by the finetune attack")


def _finetune_default_layers(model: nn.Module) -> list[str]:
    """Every module owning trainable parameters (the paper fine-tunes the whole model)."""
    return [name for name, m in model.named_modules()
            if name and any(p.requires_grad for p in m.parameters(recurse=False))]


# ----------------------------------------------------------------- the entry point

@dataclass
class PerturbResult:
    """A perturbed model and what changed.

    Attributes:
        model: the perturbed model (a copy unless ``inplace``).
        meta: the input metadata plus a history entry (None when none was given).
        changes: one dict per chosen layer: ``layer``, ``type``, ``shape``, ``changed``
            (number of parameter values that differ), ``rel_change`` (||dW|| / ||W|| over
            the layer's parameters), plus the attack's own details.
    """

    model: nn.Module
    attack: str
    level: float | int
    seed: int
    layers: list[str]
    changes: list[dict[str, Any]] = field(default_factory=list)
    meta: ModelMeta | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"attack": self.attack, "level": self.level, "seed": self.seed, "layers": self.layers,
                "changes": self.changes}


def _snapshot(model: nn.Module, layers: Sequence[str]) -> dict[str, dict[str, torch.Tensor]]:
    return {name: {k: p.detach().clone() for k, p in _module(model, name).named_parameters(recurse=False)}
            for name in layers}


def _summarize(model: nn.Module, before: dict[str, dict[str, torch.Tensor]],
               details: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per layer: how many parameter values changed and by how much (relative L2)."""
    rows = []
    for name, params in before.items():
        module = _module(model, name)
        now = dict(module.named_parameters(recurse=False))
        changed, diff2, norm2 = 0, 0.0, 0.0
        for key, old in params.items():
            new = now[key].detach().to(old.device)
            changed += int((new != old).sum())
            diff2 += float((new.double() - old.double()).pow(2).sum())
            norm2 += float(old.double().pow(2).sum())
        weight = now.get("weight")
        rows.append({
            "layer": name,
            "type": type(module).__name__,
            "shape": list(weight.shape) if weight is not None else [],
            "n_params": int(sum(p.numel() for p in params.values())),
            "changed": changed,
            "rel_change": math.sqrt(diff2 / norm2) if norm2 > 0 else 0.0,
            **details.get(name, {}),
        })
    return rows


def perturb(
    model: nn.Module | LoadedModel,
    attack: str,
    level: float,
    *,
    layers: Sequence[str] | None = None,
    target: str | None = None,
    seed: int = 0,
    global_prune: bool = False,
    neurons: Sequence[int] | None = None,
    fraction: float | None = None,
    data: Any = None,
    meta: ModelMeta | None = None,
    device: str | torch.device | None = None,
    inplace: bool = False,
    quiet: bool = True,
) -> PerturbResult:
    """Apply one perturbation (REFERENCE §1) to the chosen layers of a model.

    Args:
        model: a module, or a :class:`LoadedModel` (whose metadata is then used).
        attack: ``noise``, ``quantize``, ``prune``, ``finetune`` or ``scale``.
        level: Omega, B (bits), T (fraction), Theta (% of epochs) or K (factor).
        layers: layer names (``nnf layers``); default every Conv/Linear layer
            (for ``finetune``: every layer with trainable parameters).
        target: instead of ``layers``, one layer or ``penultimate`` / ``last`` / ``first``.
        seed: seeds every random choice (noise values, neuron subsets, data order).
        global_prune: prune with one threshold over all chosen layers.
        neurons / fraction: which neurons ``scale`` acts on (default all).
        data: training data for ``finetune`` (spec string or ``ArrayDataset``).
        meta: metadata to extend (taken from ``model`` when it is a LoadedModel).
        device: device for fine-tuning (default: the model's).
        inplace: perturb ``model`` itself instead of a copy.
        quiet: no progress bar while fine-tuning.

    Returns:
        :class:`PerturbResult` (model, per-layer changes, metadata with a history entry).
    """
    if isinstance(model, LoadedModel):
        meta = meta if meta is not None else model.meta
        model = model.model
    value = validate_level(attack, level)
    _validate_options(attack, global_prune, neurons, fraction, data)
    if attack == "finetune" and not layers and not target:
        chosen = _finetune_default_layers(model)
    else:
        chosen = resolve_layers(model, layers, target)
    if not chosen:
        raise ConfigError("no layers to perturb")
    if attack != "finetune":
        for name in chosen:
            _weight(model, name)  # fail early, before copying, on layers without weights
    net = model if inplace else copy.deepcopy(model)
    options: dict[str, Any] = {}
    if attack == "prune":
        options["global_prune"] = global_prune
    elif attack == "scale":
        options.update(neurons=neurons, fraction=fraction)
    elif attack == "finetune":
        options.update(data=data, meta=meta, device=device, quiet=quiet)
    before = _snapshot(net, chosen)
    details = ATTACKS[attack](net, value, chosen, seed=seed, **options)
    changes = _summarize(net, before, details)
    new_meta = None
    if meta is not None:
        entry: dict[str, Any] = {"op": "perturb", "attack": attack, "level": value, "seed": seed, "layers": chosen}
        if attack == "prune":
            entry["global"] = global_prune
        if attack == "scale":
            entry.update(neurons=list(neurons) if neurons is not None else None, fraction=fraction)
        if attack == "finetune":
            entry.update(data=getattr(getattr(data, "info", None), "name", data), epochs=details[chosen[0]]["epochs"])
        if meta.metrics:
            entry["metrics_before"] = dict(meta.metrics)
        new_meta = meta.with_history(**entry)
        new_meta.metrics = {}  # measured on the unperturbed model: no longer true
    return PerturbResult(net, attack, value, seed, chosen, changes, new_meta)

