"""The configuration of a robustness sweep: what identifies it, and its cells.

A results directory keeps one configuration (:func:`robustness_config`); re-running
the same command resumes it, another configuration is refused. Options that were added
later (a watermark key, ``--arch`` for a ``.pt`` state dict, ``--input-shape``,
``--example-inputs``) enter the configuration only when given, so older sweeps keep
their identity.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UnknownNameError
from ..perturbation import ATTACKS, validate_level
from ..resynchronization import METHODS

#: Levels of the paper's tables (Omega, Theta %, bits, pruned fraction, factor).
DEFAULT_LEVELS: dict[str, list[float | int]] = {
    "noise": [float(i) for i in range(11)],
    "finetune": [2.0, 4.0, 6.0, 8.0, 10.0],
    "quantize": list(range(16, 1, -1)),
    "prune": [round(0.90 + 0.01 * i, 2) for i in range(10)],
    "scale": [0.5, 0.9, 1.1, 1.5, 2.0],
}
DEFAULT_SEEDS = 10
DEFAULT_METHODS = METHODS  # lap, argmax, weight-matching, rank
CONFIG_VERSION = 1


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------- configuration

def parse_levels(attack: str, levels: Sequence[float] | str | None) -> list[float | int]:
    """Validated levels (the paper's defaults when None), duplicates dropped, order kept."""
    if attack not in ATTACKS:
        raise UnknownNameError("attack", attack, ATTACKS)
    if levels is None:
        return list(DEFAULT_LEVELS[attack])
    if isinstance(levels, str):
        try:
            levels = [float(part) for part in levels.replace(" ", "").split(",") if part]
        except ValueError:
            raise ConfigError(f"levels must be comma-separated numbers like 0,2,4; got {levels!r}") from None
    values = [validate_level(attack, level) for level in levels]
    if not values:
        raise ConfigError("no levels given")
    return list(dict.fromkeys(values))


def parse_methods(methods: Sequence[str] | str | None) -> list[str]:
    """Validated method names (all of them when None)."""
    if methods is None:
        return list(DEFAULT_METHODS)
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    for method in methods:
        if method not in METHODS:
            raise UnknownNameError("method", method, METHODS)
    if not methods:
        raise ConfigError("no re-synchronization methods given")
    return list(dict.fromkeys(methods))


def robustness_config(
    model: str | os.PathLike,
    data: str,
    attack: str,
    *,
    levels: Sequence[float] | str | None = None,
    seeds: int = DEFAULT_SEEDS,
    methods: Sequence[str] | str | None = None,
    target: str | None = None,
    limit_eval: int | None = None,
    global_prune: bool = False,
    fraction: float | None = None,
    device: str = "cpu",
    watermark_key: str | os.PathLike | None = None,
    arch: str | None = None,
    arch_args: dict[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    example_inputs: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The sweep's configuration (what identifies it: a results directory keeps one).

    ``arch`` / ``arch_args`` (a ``.pt`` state dict, a user architecture), ``input_shape`` and
    ``example_inputs`` enter it only when given, so earlier sweeps keep their identity.
    Raises ConfigError / UnknownNameError for anything invalid, before any work.
    """
    path = Path(model)
    if not path.is_file():
        raise ConfigError(f"model file not found: {str(path)!r}")
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds must be a positive number of seeds, got {seeds}")
    if limit_eval is not None and limit_eval < 1:
        raise ConfigError(f"--limit-eval must be at least 1, got {limit_eval}")
    level_list = parse_levels(attack, levels)
    if global_prune and attack != "prune":
        raise ConfigError("--global applies only to the prune attack")
    if fraction is not None and (attack != "scale" or not 0 < fraction <= 1):
        raise ConfigError("--fraction applies only to the scale attack and must be in (0, 1]")
    config = {
        "kind": "robustness",
        "version": CONFIG_VERSION,
        "model": path.name,
        "_model_path": str(path.resolve()),  # where it is now; the sha256 identifies it
        "model_sha256": file_sha256(path),
        "data": data,
        "attack": attack,
        "levels": level_list,
        "seeds": list(range(seeds)),
        "methods": parse_methods(methods),
        "target": target,
        "limit_eval": limit_eval,
        "global_prune": bool(global_prune),
        "fraction": fraction,
        "device": device,
    }
    config.update(_model_options(arch, arch_args, input_shape, example_inputs))
    if watermark_key is not None:  # only when given, so sweeps without a mark keep their identity
        key_path = Path(watermark_key)
        if not key_path.is_file():
            raise ConfigError(f"watermark key not found: {str(key_path)!r}")
        config["watermark_key_sha256"] = file_sha256(key_path)
        config["_watermark_key_path"] = str(key_path.resolve())
    return config


def _model_options(arch: str | None, arch_args: dict[str, Any] | None, input_shape: Sequence[int] | None,
                   example_inputs: str | os.PathLike | None) -> dict[str, Any]:
    """The configuration entries of the options that say how to build and feed the model (only those given)."""
    options: dict[str, Any] = {}
    if arch is not None:
        options.update(arch=arch, arch_args=dict(arch_args or {}))
    if input_shape is not None and example_inputs is not None:
        raise ConfigError("give --input-shape or --example-inputs, not both")
    if input_shape is not None:
        options["input_shape"] = [int(s) for s in input_shape]
    if example_inputs is not None:
        path = Path(example_inputs)
        if not path.is_file():
            raise ConfigError(f"example inputs not found: {str(path)!r}")
        options.update(example_inputs_sha256=file_sha256(path), _example_inputs_path=str(path.resolve()))
    return options


def robustness_cells(config: dict[str, Any]) -> list[dict[str, Any]]:
    """One cell per (level, seed), levels outermost (so partial sweeps cover low levels first)."""
    return [{"attack": config["attack"], "level": level, "seed": seed}
            for level in config["levels"] for seed in config["seeds"]]


def heatmap_cell(config: dict[str, Any]) -> dict[str, Any]:
    """The representative cell whose similarity matrices are saved: first seed, middle level.

    The middle of the list (e.g. Omega = 5 of 0..10) still shows structure; at the
    strongest levels the perturbed matrix is mostly noise.
    """
    levels = config["levels"]
    return {"attack": config["attack"], "level": levels[len(levels) // 2], "seed": config["seeds"][0]}
