"""The robustness sweep of "Find the Lady" (paper Tables 1-4, Figs. 6 and 10).

For every level of one attack and every seed: permute the model (every permutation
group, or only the target layer's group), perturb the same layers (every Conv/Linear
layer, or the target layer; fine-tuning always resumes training of the whole model and
quantization always quantizes every Conv/Linear weight, as in the paper), measure the
perturbed model's top-1 error, then re-synchronize it with every method and measure Ψ
against the true permutation.

One sweep cell is one ``(level, seed)``: the permutation and the perturbation do not
depend on the method, so they are computed once and every method runs on the same
perturbed model. Each cell yields one row per method, each with its own ``cell_id``
(the id of ``(attack, level, seed, method)``).

Files in the results directory (besides the engine's, see :mod:`.sweep`):

* ``results.parquet`` / ``results.csv``: one row per (level, seed, method), columns
  :data:`ROW_COLUMNS` (+ ``target_layer``, ``data``).
* ``groups.parquet``: ``cell_id, group, size, psi, collisions`` per re-synchronized group.
* ``heatmaps.npz``: for the first seed and the middle level, the cosine-similarity
  matrices of the target group (the penultimate layer's group without a target):
  ``original`` (original vs original), ``permuted`` (original vs permuted),
  ``perturbed`` (original vs permuted + perturbed), ``perm`` (the true permutation),
  ``group``, ``level``, ``attack``, ``seed``; at most :data:`HEATMAP_MAX` neurons.

The configuration that identifies a sweep (levels, seeds, methods, the model and how to
build and feed it) is made by :mod:`.robustness_setup`.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..graph import example_inputs_for, find_groups
from ..models.layers import weight_layers
from ..permutation import permute
from ..perturbation import perturb
from ..resynchronization import resync, similarity_matrix
from ..utils.atomic import atomic_path
from ..utils.progress import info
from .robustness_setup import (  # noqa: F401  (re-exported: the sweep's public configuration API)
    CONFIG_VERSION,
    DEFAULT_LEVELS,
    DEFAULT_METHODS,
    DEFAULT_SEEDS,
    file_sha256,
    heatmap_cell,
    parse_levels,
    parse_methods,
    robustness_cells,
    robustness_config,
)
from .sweep import CellResult, ResultsDir, SweepSummary, canonical_json, make_cell_id, run_sweep

#: Columns of every results row (more may follow).
ROW_COLUMNS = ("cell_id", "model", "arch", "attack", "level", "seed", "method", "target", "psi", "error",
               "base_error", "collisions", "n_neurons", "n_groups", "t_permute_s", "t_perturb_s", "t_resync_s",
               "t_total_s", "max_output_diff")
HEATMAP_MAX = 512

# ----------------------------------------------------------------- per-process context

@dataclass
class _Context:
    """What every cell of a sweep shares (built once per worker process)."""

    loaded: Any  # LoadedModel
    normalization: dict | None
    test: Any  # ArrayDataset
    train: Any  # ArrayDataset or None
    base_error: float
    inputs: Any  # tuple of tensors, or named tensors (a dict)
    group_set: Any
    target_layer: str | None
    permute_groups: list[str] | None
    heatmap_group: str
    device: torch.device
    key: Any = None  # WatermarkKey when the sweep tracks a watermark


@lru_cache(maxsize=2)
def _context(config_json: str) -> _Context:
    from ..data.registry import load_dataset
    from ..models.loading import load_model
    from ..models.layers import resolve_target
    from ..training import evaluate
    from ..utils.device import resolve_device

    config = json.loads(config_json)
    device = resolve_device(config["device"])
    loaded = load_model(config["_model_path"], arch=config.get("arch"), arch_args=config.get("arch_args"),
                        input_shape=config.get("input_shape"), device=device)
    test = load_dataset(config["data"], "test", limit=config["limit_eval"])
    norm = loaded.meta.normalization if loaded.meta.normalization is not None else test.info.normalization
    train = load_dataset(config["data"], "train") if config["attack"] == "finetune" else None
    base_error = evaluate(loaded.model, test, normalization=norm, device=device)["error"]
    inputs = _sweep_inputs(config, loaded, test, device)
    group_set = find_groups(loaded.model, inputs)
    target_layer = resolve_target(loaded.model, config["target"]) if config["target"] else None
    heat_layer = target_layer or resolve_target(loaded.model, "penultimate")
    try:
        heatmap_group = group_set.for_layer(heat_layer)
        permute_groups = [heatmap_group] if target_layer else None
    except (KeyError, LookupError):
        raise ConfigError(f"layer {heat_layer!r} has no permutation group (its neurons cannot be permuted); "
                          f"choose another --target") from None
    key = _watermark_key(config, loaded.model, group_set, heatmap_group if target_layer else None)
    return _Context(loaded, norm, test, train, base_error, inputs, group_set, target_layer, permute_groups,
                    heatmap_group, device, key)


def _sweep_inputs(config: dict[str, Any], loaded: Any, test: Any, device: torch.device) -> Any:
    """What the graph analysis and the output check feed the model: the ``--example-inputs``
    tensors, else a random batch (4, *shape) of the recorded shape; a file that records
    none (a ``.pt`` state dict) is fed inputs of the evaluation data's shape."""
    from ..io.inputs import for_model, read_example_inputs

    if "_example_inputs_path" in config:
        return for_model(read_example_inputs(config["_example_inputs_path"]), loaded.model, device)
    imported = bool(loaded.meta.history) and loaded.meta.history[0].get("op") == "import"
    recorded = loaded.meta.input_shape and (not imported or "input_shape" in config)
    shape = loaded.meta.input_shape if recorded else list(test.x.shape[1:])
    return (example_inputs_for(shape, n=4, seed=0).to(device),)


def _watermark_key(config: dict[str, Any], model: Any, group_set: Any, target_group: str | None) -> Any:
    """The sweep's watermark key, checked against the model (None without one)."""
    if "_watermark_key_path" not in config:
        return None
    from ..watermark import key_weight, load_key

    key = load_key(config["_watermark_key_path"])
    key_weight(model, key)  # a key for another layer or shape fails here, before any cell
    if target_group is not None and not any(
            m.name == f"{key.layer}.weight" and m.axis != 0 for m in group_set[target_group].members):
        raise ConfigError(f"the watermark lives in {key.layer!r}, whose inputs the target's group {target_group!r} "
                          f"does not permute: the permutation would not touch the mark. Use the layer feeding "
                          f"{key.layer!r} as --target, or no target")
    return key


def _clip(matrix: Any) -> np.ndarray:
    array = np.asarray(matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else matrix, dtype=np.float32)
    return array[:HEATMAP_MAX, :HEATMAP_MAX]


def _heatmaps(ctx: _Context, permuted: Any, perturbed: Any, perms: dict, cell: dict[str, Any]) -> dict[str, np.ndarray]:
    original = ctx.loaded.model
    group = ctx.heatmap_group
    sim = lambda suspect: _clip(similarity_matrix(original, suspect, ctx.group_set, group))  # noqa: E731
    return {
        "original": sim(original), "permuted": sim(permuted), "perturbed": sim(perturbed),
        "perm": np.asarray(perms.get(group, []), dtype=np.int64)[:HEATMAP_MAX],
        "group": np.asarray(str(group)), "level": np.asarray(cell["level"]),
        "attack": np.asarray(str(cell["attack"])), "seed": np.asarray(int(cell["seed"])),
    }


# ----------------------------------------------------------------- one cell

def robustness_cell(config: dict[str, Any], cell: dict[str, Any]) -> CellResult:
    """Permute, perturb, evaluate and re-synchronize with every method, for one (level, seed).

    Returns:
        One row per method (:data:`ROW_COLUMNS`), the ``groups`` table, and the
        heatmap arrays for the representative cell.
    """
    ctx = _context(canonical_json(config))
    original = ctx.loaded.model
    level, seed = cell["level"], int(cell["seed"])

    start = time.perf_counter()
    permuted = permute(original, groups=ctx.permute_groups, seed=seed, example_inputs=ctx.inputs,
                       group_set=ctx.group_set)
    t_permute = time.perf_counter() - start

    suspect = copy.deepcopy(permuted.model)  # keep the permuted model for the heatmaps
    start = time.perf_counter()
    attack = config["attack"]
    options: dict[str, Any] = {}
    if attack == "finetune":  # resumes training of the whole model, as in the paper
        options.update(data=ctx.train, meta=ctx.loaded.meta, device=ctx.device)
    elif attack == "quantize":  # the paper quantizes the whole model (its error reaches ~88 % at 2 bits)
        options["layers"] = None
    else:
        options["layers"] = [ctx.target_layer] if ctx.target_layer else None
    if attack == "prune":
        options["global_prune"] = config["global_prune"]
    if attack == "scale":
        options["fraction"] = config["fraction"]
    perturbed = perturb(suspect, attack, level, seed=seed, inplace=True, **options).model
    t_perturb = time.perf_counter() - start

    from ..training import evaluate

    error = evaluate(perturbed, ctx.test, normalization=ctx.normalization, device=ctx.device)["error"]
    marks: dict[str, float] = {}
    if ctx.key is not None:
        from ..watermark import watermark_ber

        # The same attack on the unpermuted model: what the attack alone does to the mark.
        alone = perturb(copy.deepcopy(original), attack, level, seed=seed, inplace=True, **options).model
        marks = {"ber_attack": watermark_ber(alone, ctx.key), "ber_raw": watermark_ber(perturbed, ctx.key)}
    truth = {name: list(perm) for name, perm in permuted.perms.items()}
    rows, group_rows = [], []
    for method in config["methods"]:
        start = time.perf_counter()
        result = resync(original, perturbed, method=method, truth=truth, example_inputs=ctx.inputs,
                        group_set=ctx.group_set, groups=list(truth) if ctx.permute_groups else None)
        t_resync = time.perf_counter() - start
        row_id = make_cell_id({**cell, "method": method})
        judged = [g for g in result.groups if g["name"] in truth]  # Ψ counts the permuted groups only
        n_neurons = sum(int(g["size"]) for g in judged)
        rows.append({
            "cell_id": row_id, "model": config["model"], "arch": ctx.loaded.meta.arch, "attack": attack,
            "level": level, "seed": seed, "method": method, "target": config["target"],
            "psi": None if result.psi is None else float(result.psi), "error": float(error),
            "base_error": float(ctx.base_error),
            "collisions": int(sum(int(g.get("collisions") or 0) for g in judged)), "n_neurons": n_neurons,
            "n_groups": len(judged), "t_permute_s": t_permute, "t_perturb_s": t_perturb, "t_resync_s": t_resync,
            "t_total_s": t_permute + t_perturb + t_resync, "max_output_diff": float(permuted.max_output_diff),
            "target_layer": ctx.target_layer, "data": config["data"],
            **({**marks, "ber_resync": watermark_ber(result.model, ctx.key)} if marks else {}),
        })
        group_rows += [{"cell_id": row_id, "group": str(g["name"]), "size": int(g["size"]),
                        "psi": None if g.get("psi") is None else float(g["psi"]),
                        "collisions": int(g.get("collisions") or 0)} for g in result.groups]
    arrays = _heatmaps(ctx, permuted.model, perturbed, truth, cell) if cell == heatmap_cell(config) else {}
    return CellResult(rows, {"groups": group_rows}, arrays)


# ----------------------------------------------------------------- the whole sweep

def check_setup(config: dict[str, Any]) -> float:
    """Fail fast in the driver (model, data, recipe, target); returns the base error (%)."""
    if config["attack"] == "finetune":
        from ..io.modelfile import read_meta

        meta = read_meta(config["_model_path"])
        if meta is None or not meta.recipe:
            raise ConfigError("fine-tuning resumes the model's training recipe, but the model's metadata records "
                              "none (train it with `nnf train`, or sweep another attack)")
    return _context(canonical_json(config)).base_error


TARGET_ONLY_ATTACKS = ("noise", "prune", "scale")  # the attacks that change the target layer alone


def target_companions(config: dict[str, Any]) -> list[str]:
    """Other Conv/Linear layers whose neurons share the target's permutation group.

    With a target, noise, pruning and scaling change the target layer only, but the group is
    permuted (and re-synchronized) as a whole: the companions' untouched weights then tell the
    permutation away (in a ResNet, the penultimate conv shares the residual stream with every
    block of its stage). Empty without a target or for whole-model attacks.
    """
    if not config["target"] or config["attack"] not in TARGET_ONLY_ATTACKS:
        return []
    ctx = _context(canonical_json(config))
    in_group = {(m.name, m.axis) for m in ctx.group_set[ctx.heatmap_group].members}
    # a layer's neurons index axis 0 of its weight (axis 1 in transposed convolutions)
    return [name for name, module in weight_layers(ctx.loaded.model)
            if name != ctx.target_layer and (f"{name}.weight", int(getattr(module, "transposed", False))) in in_group]


def _companions_note(config: dict[str, Any], companions: list[str]) -> str:
    shown = ", ".join(companions[:3]) + (", ..." if len(companions) > 3 else "")
    return (f"the target {config['target']!r} shares its permutation group with {len(companions)} other layer(s) "
            f"({shown}) that {config['attack']} leaves untouched; re-synchronization can read the permutation "
            f"from them, so Ψ will look better than the attack deserves (choose a layer that owns its neurons "
            f"as --target)")


def write_heatmaps(results_dir: str | os.PathLike, config: dict[str, Any]) -> Path | None:
    """Copy the representative cell's matrices to ``heatmaps.npz`` (None if it has not run)."""
    store = ResultsDir(results_dir)
    arrays = store.cell_arrays(make_cell_id(heatmap_cell(config)))
    if arrays is None:
        return None
    path = store.path / "heatmaps.npz"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return path


def run_robustness(
    model: str | os.PathLike,
    data: str,
    attack: str,
    results_dir: str | os.PathLike,
    *,
    levels: Sequence[float] | str | None = None,
    seeds: int = DEFAULT_SEEDS,
    methods: Sequence[str] | str | None = None,
    target: str | None = None,
    limit_eval: int | None = None,
    global_prune: bool = False,
    fraction: float | None = None,
    device: str = "cpu",
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    quiet: bool = False,
    watermark_key: str | os.PathLike | None = None,
    arch: str | None = None,
    arch_args: dict[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    example_inputs: str | os.PathLike | None = None,
) -> SweepSummary:
    """Run (or resume) a robustness sweep; see the module docstring for what it writes.

    ``arch`` / ``arch_args`` build the model of a ``.pt`` state dict (or a user architecture);
    ``input_shape`` / ``example_inputs`` feed the graph analysis (default: the shape the file
    records, else the data's), as for ``nnf groups``.

    Returns:
        The engine's :class:`SweepSummary` (failed cells listed, not raised).
    """
    config = robustness_config(model, data, attack, levels=levels, seeds=seeds, methods=methods, target=target,
                               limit_eval=limit_eval, global_prune=global_prune, fraction=fraction, device=device,
                               watermark_key=watermark_key, arch=arch, arch_args=arch_args, input_shape=input_shape,
                               example_inputs=example_inputs)
    ResultsDir(results_dir).check_config(config)  # refuse a foreign directory before any work
    check_setup(config)
    notes = [_companions_note(config, companions)] if (companions := target_companions(config)) else []
    for note in notes:
        info(f"warning: {note}", quiet)
    summary = run_sweep(results_dir, config, robustness_cells(config), robustness_cell, executor=executor,
                        workers=workers, address=address, quiet=quiet, description=f"robustness {attack}")
    write_heatmaps(results_dir, config)
    summary.notes = notes
    return summary

