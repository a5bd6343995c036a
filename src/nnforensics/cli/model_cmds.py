"""nnf init / train / eval / layers / models / datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import torch
import typer

from ..data.registry import list_datasets
from ..errors import ConfigError
from ..io.modelfile import save_model
from ..models.factory import create_model
from ..models.registry import list_models, parse_arch_args
from ..training import Recipe, evaluate
from ..utils.device import resolve_device
from . import app
from .common import (
    ArchArgOpt,
    ArchOpt,
    DataOpt,
    DebugOpt,
    DeviceOpt,
    JsonOpt,
    OutOpt,
    QuietOpt,
    console,
    print_json,
    table,
)
from .loading import open_model


@app.command("init")
def init_cmd(
    arch: Annotated[str, typer.Option("--arch", help="Architecture (nnf models) or file.py:Class.")],
    out: OutOpt,
    arch_arg: ArchArgOpt = None,
    data: Annotated[Optional[str], typer.Option("--data", help="Take classes/channels/size from this dataset.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Initialisation seed.")] = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write a freshly initialised model."""
    from ..data.registry import dataset_info

    info = dataset_info(data) if data else None
    loaded = create_model(arch, parse_arch_args(arch_arg), seed=seed, data=info)
    save_model(loaded.model, out, loaded.meta)
    n_params = sum(p.numel() for p in loaded.model.parameters())
    payload = {"path": str(out), "arch": arch, "arch_args": loaded.meta.arch_args, "parameters": n_params}
    if json_out:
        print_json(payload)
    elif not quiet:
        console.print(f"wrote {out} ({arch}, {n_params:,} parameters)")


@app.command("train")
def train_cmd(
    arch: Annotated[str, typer.Option("--arch", help="Architecture (nnf models) or file.py:Class.")],
    data: DataOpt,
    out: OutOpt,
    arch_arg: ArchArgOpt = None,
    optimizer: Annotated[str, typer.Option(help="sgd or adam.")] = "sgd",
    lr: Annotated[float, typer.Option(help="Initial learning rate.")] = 0.1,
    momentum: Annotated[float, typer.Option(help="SGD momentum.")] = 0.9,
    nesterov: Annotated[bool, typer.Option("--nesterov/--no-nesterov", help="Nesterov momentum.")] = True,
    weight_decay: Annotated[float, typer.Option(help="L2 weight decay.")] = 5e-4,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 128,
    epochs: Annotated[float, typer.Option(help="Epochs (fractions allowed).")] = 30,
    schedule: Annotated[str, typer.Option(help="step (x0.1 at 1/3, 2/3), cosine or none.")] = "step",
    init_seed: Annotated[int, typer.Option(help="Seed of the initialisation (and dropout).")] = 0,
    data_seed: Annotated[int, typer.Option(help="Seed of data order and augmentation.")] = 0,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Random crop (+flip) where the dataset uses it.")] = True,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N epochs (0: never).")] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT's checkpoint.")] = False,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N training images.")] = None,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train a model from scratch and write it with its recipe and test accuracy."""
    from ..training import fit

    recipe = Recipe(optimizer=optimizer, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                    batch_size=batch_size, epochs=epochs, schedule=schedule, init_seed=init_seed,
                    data_seed=data_seed, augment=augment, checkpoint_every=checkpoint_every).validate()
    if Path(out).suffix.lower() != ".safetensors":
        raise ConfigError(f"model outputs are written as .safetensors; got {str(out)!r}")
    loaded = fit(arch, data, recipe, arch_args=parse_arch_args(arch_arg), device=device,
                 checkpoint_path=Path(str(out) + ".ckpt"), resume=resume, quiet=quiet, limit=limit)
    save_model(loaded.model, out, loaded.meta)
    Path(str(out) + ".ckpt").unlink(missing_ok=True)
    payload = {"path": str(out), **loaded.meta.metrics}
    if json_out:
        print_json(payload)
    elif not quiet:
        console.print(f"wrote {out}: test accuracy {loaded.meta.metrics['test_accuracy']:.2f}% "
                      f"on {loaded.meta.metrics['test_n']} images")


@app.command("eval")
def eval_cmd(
    model: Annotated[Path, typer.Argument(help="Model file (.safetensors, or .pt with --arch).")],
    data: DataOpt,
    arch: ArchOpt = None,
    arch_arg: ArchArgOpt = None,
    split: Annotated[str, typer.Option(help="train, val, test or trainval.")] = "test",
    limit: Annotated[Optional[int], typer.Option(help="Evaluate only the first N images.")] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 512,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Top-1 accuracy and error (%) of a model on a dataset split."""
    from ..data.registry import load_dataset

    loaded = open_model(model, arch, arch_arg, device="cpu")
    dataset = load_dataset(data, split, limit=limit)
    norm = loaded.meta.normalization if loaded.meta.normalization is not None else dataset.info.normalization
    result = evaluate(loaded.model, dataset, normalization=norm, device=resolve_device(device), batch_size=batch_size)
    if json_out:
        print_json(result)
    else:
        console.print(f"accuracy {result['accuracy']:.2f}%  error {result['error']:.2f}%  n={result['n']}")


@app.command("layers")
def layers_cmd(
    model: Annotated[Optional[Path], typer.Argument(help="Model file; or give --arch alone.")] = None,
    arch: ArchOpt = None,
    arch_arg: ArchArgOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Every layer's name, type and parameter shapes (the names other commands accept)."""
    from ..models.registry import build_model

    if model is not None:
        net = open_model(model, arch, arch_arg).model
    elif arch is not None:
        net = build_model(arch, **parse_arch_args(arch_arg))
    else:
        raise ConfigError("give a model file or --arch NAME")
    rows = layer_rows(net)
    if json_out:
        print_json(rows)
        return
    console.print(table(None, ["layer", "type", "parameters"],
                        [[r["name"], r["type"], ", ".join(f"{k} {tuple(v)}" for k, v in r["parameters"].items())]
                         for r in rows]))
    console.print(f"{len(rows)} layers, {sum(p.numel() for p in net.parameters()):,} parameters")


def layer_rows(net: torch.nn.Module) -> list[dict]:
    rows = []
    for name, module in net.named_modules():
        own = {k: list(v.shape) for k, v in module.named_parameters(recurse=False)}
        own.update({k: list(v.shape) for k, v in module.named_buffers(recurse=False) if v is not None})
        if own:
            rows.append({"name": name or "(root)", "type": type(module).__name__, "parameters": own})
    return rows


@app.command("models")
def models_cmd(json_out: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Built-in architectures."""
    specs = list_models()
    rows = [{"name": s.name, "family": s.family, "input_shape": list(s.input_shape),
             "torchvision": s.torchvision, "description": s.description} for s in specs]
    if json_out:
        print_json(rows)
        return
    console.print(table("built-in architectures", ["name", "family", "input", "torchvision layout", "description"],
                        [[r["name"], r["family"], r["input_shape"], r["torchvision"] or "", r["description"]]
                         for r in rows]))
    console.print("user architectures: --arch path/to/file.py:ClassName or --arch package.module:factory")


@app.command("datasets")
def datasets_cmd(json_out: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Built-in dataset readers and where each is read from."""
    rows = [{"name": e.name, "description": e.description, "source": e.default_source(),
             "needs_path": e.needs_path} for e in list_datasets()]
    if json_out:
        print_json(rows)
        return
    console.print(table("datasets (--data NAME or NAME:PATH)", ["name", "description", "read from"],
                        [[r["name"], r["description"], r["source"]] for r in rows]))


