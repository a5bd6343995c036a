"""The synaptic-filtering sweep (InferLink): models x scopes x filters x layers, resumable.

One cell is one filter swept over one target (a layer in the ``local`` scope, every
Conv/Linear layer in the ``global`` one) of one model file; it yields one row per
threshold. Several model files (initialisations x epochs, e.g. the snapshots
``nnf train --save-every`` writes) go into one sweep, which gives the layer x epoch
picture. Files in the results directory (besides the engine's, see :mod:`.sweep`):

* ``results.parquet`` / ``.csv``: one row per threshold (:data:`ROW_KEYS` and the
  filter's columns, see :func:`nnforensics.fragility.run_filter`);
* ``scores.parquet`` / ``.csv``: one row per curve, its scores and verdict;
* ``verdicts.parquet`` / ``.csv``: one row per (model, scope, layer).

The adversarial inputs of a model are crafted once per worker process and model (they
are deterministic: every worker crafts the same ones).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..errors import ConfigError, ShapeMismatchError, UnknownNameError
from ..fragility import (
    ADVERSARIAL_MODES,
    DEFAULT_THRESHOLDS,
    DEFAULT_TOLERANCE,
    GLOBAL_TARGET,
    FilterRun,
    filter_targets,
    layer_verdicts,
    run_filter,
    score_table,
)
from ..fragility.analysis import check_init_state
from ..fragility.filters import check_filters, check_scope, check_thresholds
from ..fragility.scores import check_tolerance
from ..utils.atomic import atomic_path
from .robustness_setup import file_sha256
from .sweep import CellResult, ResultsDir, SweepSummary, canonical_json, run_sweep

CONFIG_VERSION = 1
DEFAULT_LIMIT = 1000
DEFAULT_EPS = 0.1
#: Columns every results row starts with.
ROW_KEYS = ("cell_id", "model", "run", "init", "epoch", "arch", "data", "scope", "filter", "layer", "attack", "eps",
            "adversarial", "n", "base_clean", "base_adv")
ATTACK_NAMES = ("fgsm", "pgd", "none")


# ----------------------------------------------------------------- configuration

def check_eps(eps: object) -> float:
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps) and 0 <= eps <= 1):
        raise ConfigError(f"--eps must be a number in [0, 1] (inputs are in [0, 1]), got {eps}")
    return float(eps)


def training_point(path: Path, meta: Any) -> dict[str, Any]:
    """``run`` (the training run), ``init`` (its initialisation seed) and ``epoch`` of a model file.

    From the metadata (``extra.epoch`` of a ``--save-every`` snapshot, the recipe's
    ``init_seed`` and epochs), else from a ``<run>.epoch<E>`` file name; unknown values are None.
    """
    match = re.match(r"^(?P<run>.+)\.epoch(?P<epoch>\d+)$", path.stem)
    run = match.group("run") if match else path.stem
    epoch = (meta.extra or {}).get("epoch")
    recipe = meta.recipe or {}
    if epoch is None and match:
        epoch = int(match.group("epoch"))
    if epoch is None and recipe.get("epochs") is not None:
        epoch = recipe["epochs"]
    return {"run": run, "init": recipe.get("init_seed"), "epoch": epoch}


def _model_entry(path: Path, label: str) -> dict[str, Any]:
    from ..models.loading import load_model

    if not path.is_file():
        raise ConfigError(f"model file not found: {str(path)!r}")
    loaded = load_model(path)
    return {"name": label, "sha256": file_sha256(path), "_path": str(path.resolve()), "arch": loaded.meta.arch,
            **training_point(path, loaded.meta)}


def _labels(paths: Sequence[Path]) -> list[str]:
    """Short unique names: file stems, with parent folders added where stems collide."""
    labels = [p.stem for p in paths]
    if len(set(labels)) == len(labels):
        return labels
    labels = [f"{p.parent.name}/{p.stem}" for p in paths]
    return labels if len(set(labels)) == len(labels) else [str(p) for p in paths]


def fragility_config(
    models: Sequence[str | os.PathLike],
    data: str,
    *,
    filters: Sequence[str] | str | None = None,
    scopes: Sequence[str] | str = ("local",),
    thresholds: int = DEFAULT_THRESHOLDS,
    layers: Sequence[str] | None = None,
    attack: str | None = "fgsm",
    eps: float = DEFAULT_EPS,
    attack_args: dict[str, Any] | None = None,
    adversarial: str = "fixed",
    init_models: Sequence[str | os.PathLike] | None = None,
    split: str = "test",
    limit_eval: int | None = DEFAULT_LIMIT,
    batch_size: int = 500,
    tolerance: float = DEFAULT_TOLERANCE,
    device: str = "cpu",
) -> dict[str, Any]:
    """The sweep's configuration; every option is checked here, before any work."""
    if not models:
        raise ConfigError("no model given")
    paths = [Path(m) for m in models]
    if len(set(p.resolve() for p in paths)) != len(paths):
        raise ConfigError("the same model file is given twice")
    filter_names = check_filters(filters)
    scope_names = [check_scope(s) for s in ([scopes] if isinstance(scopes, str) else list(scopes))]
    if not scope_names:
        raise ConfigError("no scope given; choose local, global or both")
    attack_name = "none" if attack in (None, "none") else attack
    if attack_name not in ATTACK_NAMES:
        raise UnknownNameError("attack", str(attack), ATTACK_NAMES)
    if adversarial not in ADVERSARIAL_MODES:
        raise UnknownNameError("adversarial mode", adversarial, ADVERSARIAL_MODES)
    if attack_name != "none":  # an option the attack does not take is refused here, before any work
        from ..attacks import make_attack

        make_attack(attack_name, torch.nn.Identity(), eps=check_eps(eps), **dict(attack_args or {}))
    if limit_eval is not None and (not isinstance(limit_eval, int) or limit_eval < 1):
        raise ConfigError(f"--limit-eval must be a positive number of images, got {limit_eval}")
    inits = [Path(p) for p in (init_models or [])]
    if "reset" in filter_names and not inits:
        raise ConfigError("the reset filter needs the weights at initialisation: give --init INIT_MODEL "
                          "(e.g. the <name>.epoch0.safetensors that nnf train --save-every writes)")
    if inits and len(inits) not in (1, len(paths)):
        raise ConfigError(f"give one --init for all models or one per model ({len(paths)}), got {len(inits)}")
    entries = [_model_entry(p, label) for p, label in zip(paths, _labels(paths))]
    for entry, init in zip(entries, inits * len(paths) if len(inits) == 1 else inits):
        if not init.is_file():
            raise ConfigError(f"initial model file not found: {str(init)!r}")
        entry.update(init_sha256=file_sha256(init), _init_path=str(init.resolve()))
    return {
        "kind": "fragility",
        "version": CONFIG_VERSION,
        "models": entries,
        "data": data,
        "split": split,
        "limit_eval": limit_eval,
        "filters": filter_names,
        "scopes": scope_names,
        "thresholds": check_thresholds(thresholds),
        "layers": list(layers) if layers else None,
        "attack": attack_name,
        "eps": check_eps(eps) if attack_name != "none" else None,
        "attack_args": dict(attack_args or {}),
        "adversarial": adversarial,
        "batch_size": int(batch_size),
        "tolerance": check_tolerance(tolerance),
        "device": device,
    }


# ----------------------------------------------------------------- per-process context

@dataclass
class _Context:
    loaded: Any  # LoadedModel
    run: FilterRun
    init_state: dict[str, torch.Tensor] | None
    data_name: str


def _crafter(config: dict[str, Any], device: torch.device):
    """``craft(net, x, y)`` with the sweep's attack, or None without one."""
    if config["attack"] == "none":
        return None
    from ..attacks import adversarial_examples, make_attack

    def craft(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        attack = make_attack(config["attack"], net, eps=config["eps"], **config["attack_args"])
        return adversarial_examples(attack, x, y, batch_size=config["batch_size"], device=device).to(x.device)

    return craft


@lru_cache(maxsize=2)
def _context(config_json: str, model_name: str) -> _Context:
    from ..data.registry import load_dataset, to_float
    from ..models.loading import load_model
    from ..utils.device import resolve_device

    config = json.loads(config_json)
    entry = next(m for m in config["models"] if m["name"] == model_name)
    device = resolve_device(config["device"])
    loaded = load_model(entry["_path"], device=device)
    data = load_dataset(config["data"], config["split"], limit=config["limit_eval"])
    norm = loaded.meta.normalization if loaded.meta.normalization is not None else data.info.normalization
    x, y = to_float(data.x).to(device), data.y.to(device)
    run = FilterRun(loaded.model, x, y, normalization=norm, craft=_crafter(config, device),
                    adversarial=config["adversarial"], batch_size=config["batch_size"])
    init_state = None
    if "_init_path" in entry:
        init_state = {k: v.to(device) for k, v in load_model(entry["_init_path"]).model.state_dict().items()}
    return _Context(loaded, run, init_state, data.info.name)


def fragility_cell(config: dict[str, Any], cell: dict[str, Any]) -> CellResult:
    """One filter over one target of one model: a row per threshold."""
    start = time.perf_counter()
    ctx = _context(canonical_json(config), cell["model"])
    entry = next(m for m in config["models"] if m["name"] == cell["model"])
    layers = [cell["layer"]] if cell["scope"] == "local" else config["layers"]
    (target,) = filter_targets(ctx.loaded.model, cell["scope"], layers)
    rows = run_filter(ctx.run, target, cell["filter"], config["thresholds"], init=ctx.init_state)
    seconds = time.perf_counter() - start
    base = {"model": entry["name"], "run": entry["run"], "init": entry["init"], "epoch": entry["epoch"],
            "arch": entry["arch"], "data": ctx.data_name, "scope": cell["scope"], "attack": config["attack"],
            "eps": config["eps"], "adversarial": config["adversarial"], "n": len(ctx.run.y),
            "base_clean": ctx.run.base_clean, "base_adv": ctx.run.base_adv, "t_cell_s": seconds}
    return CellResult([{**base, **row} for row in rows])


def fragility_cells(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Cells in order: model, scope, filter, then layer (local) — the first model's picture comes first."""
    from ..models.loading import load_model

    cells = []
    for entry in config["models"]:
        loaded = load_model(entry["_path"])
        local = [t.name for t in filter_targets(loaded.model, "local", config["layers"])]
        if "_init_path" in entry:
            initial = load_model(entry["_init_path"])
            if initial.meta.arch != loaded.meta.arch:
                raise ShapeMismatchError(f"the initial model is a {initial.meta.arch!r}, {entry['name']!r} a "
                                         f"{loaded.meta.arch!r}: not the same architecture")
            init = initial.model.state_dict()
            check_init_state(loaded.model, init, filter_targets(loaded.model, "global", config["layers"]))
        for scope in config["scopes"]:
            for kind in config["filters"]:
                for layer in (local if scope == "local" else [GLOBAL_TARGET]):
                    cells.append({"model": entry["name"], "scope": scope, "filter": kind, "layer": layer})
    return cells


# ----------------------------------------------------------------- tables

def _write_table(directory: Path, name: str, frame: pd.DataFrame) -> None:
    for suffix in (".parquet", ".csv"):
        with atomic_path(directory / f"{name}{suffix}") as tmp:
            frame.to_parquet(tmp, index=False) if suffix == ".parquet" else frame.to_csv(tmp, index=False)


def write_scores(results_dir: str | os.PathLike, tolerance: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compute and save ``scores`` and ``verdicts`` from the saved rows (tolerance: the sweep's)."""
    store = ResultsDir(results_dir)
    config = store.read_config() or {}
    curves = store.consolidate()
    tau = config.get("tolerance", DEFAULT_TOLERANCE) if tolerance is None else tolerance
    scores = score_table(curves, tau)
    verdicts = layer_verdicts(scores)
    if not scores.empty:
        _write_table(store.path, "scores", scores)
        _write_table(store.path, "verdicts", verdicts)
    return scores, verdicts


def run_fragility(
    models: Sequence[str | os.PathLike],
    data: str,
    results_dir: str | os.PathLike,
    *,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    quiet: bool = False,
    **options: Any,
) -> SweepSummary:
    """Run (or resume) a synaptic-filtering sweep; ``options`` are :func:`fragility_config`'s.

    Returns the engine's :class:`SweepSummary`; ``scores`` / ``verdicts`` tables are written
    from whatever cells finished.
    """
    config = fragility_config(models, data, **options)
    ResultsDir(results_dir).check_config(config)
    cells = fragility_cells(config)
    summary = run_sweep(results_dir, config, cells, fragility_cell, executor=executor, workers=workers,
                        address=address, quiet=quiet, description="synaptic filtering")
    write_scores(results_dir)
    return summary
