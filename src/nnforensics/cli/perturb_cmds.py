"""nnf perturb: apply one perturbation (noise, quantize, prune, finetune, scale) to a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import ConfigError
from ..io.modelfile import save_model
from ..utils.device import resolve_device
from . import app
from .common import (
    DEVICE_DEFAULT,
    ArchArgOpt,
    ArchOpt,
    DebugOpt,
    DeviceOpt,
    JsonOpt,
    QuietOpt,
    console,
    print_json,
    table,
)
from .loading import open_model


def parse_int_list(text: str, what: str) -> list[int]:
    """``"0,3,5"`` -> ``[0, 3, 5]`` (a ConfigError naming ``what`` otherwise)."""
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers like 0,3,5; got {text!r}") from None
    if not values:
        raise ConfigError(f"{what} is empty")
    return values


def split_names(items: list[str] | None) -> list[str] | None:
    """Repeated and/or comma-separated names -> one list (None when none given)."""
    names = [part.strip() for item in items or [] for part in item.split(",") if part.strip()]
    return names or None


def _chosen_attack(options: dict[str, float | None]) -> tuple[str, float]:
    given = {name: value for name, value in options.items() if value is not None}
    if len(given) != 1:
        flags = ", ".join(f"--{name}" for name in options)
        raise ConfigError(f"give exactly one perturbation: one of {flags}"
                          + (f" (got {', '.join('--' + n for n in given)})" if given else ""))
    return next(iter(given.items()))


def _details(change: dict[str, Any]) -> str:
    """The attack-specific part of a change row, short."""
    skip = {"layer", "type", "shape", "n_params", "changed", "rel_change", "neurons"}
    parts = []
    for key, value in change.items():
        if key in skip:
            continue
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


@app.command("perturb")
def perturb_cmd(
    model: Annotated[Path, typer.Argument(help="Model file (.safetensors, or .pt with --arch).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output model file (.safetensors).")],
    noise: Annotated[Optional[float], typer.Option("--noise", help="Gaussian noise Omega >= 0 (x the layer's std).")] = None,
    quantize: Annotated[Optional[int], typer.Option("--quantize", help="Quantise weights to B bits (1..32).")] = None,
    prune: Annotated[Optional[float], typer.Option("--prune", help="Zero the fraction T of smallest |w| (0 <= T < 1).")] = None,
    finetune: Annotated[Optional[float], typer.Option(
        "--finetune", help="Resume the model's recipe for THETA % of its epochs (needs --data).")] = None,
    scale: Annotated[Optional[float], typer.Option("--scale", help="Multiply neurons' weights and biases by K.")] = None,
    global_prune: Annotated[bool, typer.Option("--global", help="Prune with one threshold over all chosen layers.")] = False,
    neurons: Annotated[Optional[str], typer.Option("--neurons", help="Neurons to scale, e.g. 0,3,5.")] = None,
    fraction: Annotated[Optional[float], typer.Option("--fraction", help="Scale a random fraction F of neurons.")] = None,
    data: Annotated[Optional[str], typer.Option("--data", help="Training data for --finetune (NAME[:PATH]).")] = None,
    layers: Annotated[Optional[list[str]], typer.Option(
        "--layers", help="Layer(s) to perturb (repeatable or comma-separated; see nnf layers). Default: all Conv/Linear.")] = None,
    target: Annotated[Optional[str], typer.Option(
        "--target", help="One layer, or penultimate / last / first (instead of --layers).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the perturbation.")] = 0,
    arch: ArchOpt = None,
    arch_arg: ArchArgOpt = None,
    device: DeviceOpt = DEVICE_DEFAULT,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Perturb a model's weights (noise, quantization, pruning, fine-tuning or neuron scaling); the result
    records what was done in its history."""
    from ..perturbation import perturb

    attack, level = _chosen_attack({"noise": noise, "quantize": quantize, "prune": prune,
                                    "finetune": finetune, "scale": scale})
    if Path(out).suffix.lower() != ".safetensors":
        raise ConfigError(f"model outputs are written as .safetensors; got {str(out)!r}")
    from ..utils.atomic import check_not_input

    check_not_input(out, [model])  # before any (possibly long) work
    loaded = open_model(model, arch, arch_arg, device=str(resolve_device(device)))
    result = perturb(loaded, attack, level, layers=split_names(layers), target=target, seed=seed,
                     global_prune=global_prune, neurons=parse_int_list(neurons, "--neurons") if neurons else None,
                     fraction=fraction, data=data, device=resolve_device(device), inplace=True, quiet=quiet)
    save_model(result.model, out, result.meta, inputs=[model])
    payload = {"path": str(out), **result.to_dict()}
    if json_out:
        print_json(payload)
        return
    if quiet:
        return
    console.print(table(f"{attack} {result.level} (seed {seed})",
                        ["layer", "type", "shape", "changed", "rel. change", "details"],
                        [[c["layer"], c["type"], c["shape"], f"{c['changed']:,} / {c['n_params']:,}",
                          c["rel_change"], _details(c)] for c in result.changes]))
    console.print(f"wrote {out}")
