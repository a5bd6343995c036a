"""nnf init / train / eval / layers / models / datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import torch
import typer

from ..data.registry import list_datasets, load_dataset
from ..io.modelfile import check_model_output, save_model
from ..models.factory import create_model
from ..models.registry import is_user_arch, list_models
from ..training import Recipe, check_batch_size, evaluate
from ..utils.device import resolve_device
from . import app
from .common import (
    DEVICE_DEFAULT,
    ArchArgOpt,
    ArchOpt,
    DataOpt,
    DebugOpt,
    DeviceOpt,
    InputShapeOpt,
    JsonOpt,
    QuietOpt,
    RequiredArchOpt,
    console,
    print_json,
    table,
)
from .loading import arch_args_for, check_data_fits, model_or_arch, open_model, parse_input_shape, record_input_shape

ModelOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output model file (.safetensors, written atomically).")]
#: How ``nnf train --help`` documents a recipe option left unset.
FROM_RECIPE = " (default: from the recipe for the architecture and dataset)."


def _input_files(arch: str | None, data: str | None) -> list[str]:
    """Files a command reads besides a model: a user architecture file, a dataset path."""
    files = []
    if arch and is_user_arch(arch) and arch.rpartition(":")[0].endswith(".py"):
        files.append(arch.rpartition(":")[0])
    if data and ":" in data:
        files.append(data.partition(":")[2])
    return files


@app.command("init")
def init_cmd(
    arch: RequiredArchOpt,
    out: ModelOutOpt,
    arch_arg: ArchArgOpt = None,
    data: Annotated[Optional[str], typer.Option("--data", help="Take classes/channels/size (and normalisation) "
                                                "from this dataset, NAME or NAME:PATH.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Initialisation seed.")] = 0,
    input_shape: InputShapeOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write a freshly initialised model (same --seed, same weights).

    Example: nnf init --arch lenet --arch-arg width=0.5 --seed 1 -o lenet.safetensors
    """
    from ..data.registry import dataset_info

    check_model_output(out, _input_files(arch, data))
    shape = parse_input_shape(input_shape)
    info = dataset_info(data) if data else None
    # e.g. for your own architecture: later commands on the file then need no --input-shape
    loaded = record_input_shape(create_model(arch, arch_args_for(arch, arch_arg), seed=seed, data=info), shape)
    save_model(loaded.model, out, loaded.meta, inputs=_input_files(arch, data))
    n_params = sum(p.numel() for p in loaded.model.parameters())
    payload = {"path": str(out), "arch": arch, "arch_args": loaded.meta.arch_args,
               "input_shape": loaded.meta.input_shape, "parameters": n_params}
    if json_out:
        print_json(payload)
    elif not quiet:
        console.print(f"wrote {out} ({arch}, {n_params:,} parameters)")


@app.command("train")
def train_cmd(
    arch: RequiredArchOpt,
    data: DataOpt,
    out: ModelOutOpt,
    arch_arg: ArchArgOpt = None,
    optimizer: Annotated[Optional[str], typer.Option(help="sgd or adam" + FROM_RECIPE)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Initial learning rate" + FROM_RECIPE)] = None,
    momentum: Annotated[Optional[float], typer.Option(help="SGD momentum" + FROM_RECIPE)] = None,
    nesterov: Annotated[Optional[bool], typer.Option("--nesterov/--no-nesterov",
                                                     help="Nesterov momentum (SGD)" + FROM_RECIPE)] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="L2 weight decay" + FROM_RECIPE)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size" + FROM_RECIPE)] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Epochs, fractions allowed (e.g. 0.5)" + FROM_RECIPE)] = None,
    schedule: Annotated[Optional[str], typer.Option(
        help="step (x0.1 at 1/3 and 2/3), cosine or none" + FROM_RECIPE)] = None,
    seed: Annotated[Optional[int], typer.Option(
        help="Seed of both the initialisation and the data order (default 0); --init-seed and --data-seed "
             "override it.")] = None,
    init_seed: Annotated[Optional[int], typer.Option(help="Seed of the initialisation and dropout "
                                                     "(default: --seed).")] = None,
    data_seed: Annotated[Optional[int], typer.Option(help="Seed of data order and augmentation "
                                                     "(default: --seed).")] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Random crop (+flip) where the "
                                                    "dataset uses it" + FROM_RECIPE)] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(
        help="Write OUT.ckpt every N epochs, 0: never (default 1).")] = None,
    save_every: Annotated[Optional[int], typer.Option(
        help="Also keep complete model files of the initialisation and of every K-th whole epoch next to "
             "OUT: m.epoch0.safetensors, m.epochK.safetensors, ... for -o m.safetensors.", metavar="K")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT.ckpt; the result equals an "
                                         "uninterrupted run (bit for bit on CPU).")] = False,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N training images.")] = None,
    watermark_layer: Annotated[Optional[str], typer.Option(
        help="Embed an Uchida watermark in this Conv/Linear layer while training (needs --key-out).")] = None,
    watermark_bits: Annotated[Optional[int], typer.Option(help="Watermark bits T (default 64).")] = None,
    watermark_strength: Annotated[Optional[float], typer.Option(
        help="Weight lambda of the watermark regulariser (default 0.1).")] = None,
    watermark_message: Annotated[Optional[str], typer.Option(
        help="Text or 0x-hex watermark message (default: random bits).")] = None,
    key_out: Annotated[Optional[Path], typer.Option(
        "--key-out", help="Write the watermark key (JSON, a secret) here, before training.")] = None,
    device: DeviceOpt = DEVICE_DEFAULT,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train a model from scratch and write it with its recipe and test accuracy.

    Checkpoints go to OUT.ckpt (removed when training ends); OUT itself is written
    once, atomically, so an interrupted run never leaves a half-written model.
    --save-every K keeps model files of the run: m.epoch0.safetensors (the
    initialisation), m.epochK.safetensors, ... next to m.safetensors.

    Recipe options left out come from a default recipe for the architecture and
    dataset: fast Adam for small networks and MNIST-like data, the Find the Lady
    paper's SGD for VGG/ResNet-family CNNs on RGB images. The recipe is printed
    at the start and recorded in OUT.

    Example: nnf train --arch lenet --data mnist --epochs 1 -o lenet.safetensors
    """
    from ..data.registry import dataset_info
    from ..io.snapshots import Snapshots
    from ..recipes import resolve_recipe
    from ..training import fit
    from ..utils.progress import info
    from ..watermark import watermark_loss
    from .watermark_cmds import training_key, training_report

    given = dict(optimizer=optimizer, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                 batch_size=batch_size, epochs=epochs, schedule=schedule, init_seed=init_seed, data_seed=data_seed,
                 augment=augment, checkpoint_every=checkpoint_every)
    Recipe(**{k: v for k, v in given.items() if v is not None}).validate()  # bad values fail before reading data
    resolve_device(device)
    inputs = _input_files(arch, data)
    check_model_output(out, inputs)  # before any (possibly long) training
    snapshots = Snapshots(out, save_every, inputs, quiet=quiet or json_out) if save_every is not None else None
    resolved = resolve_recipe(arch, dataset_info(data), given, seed=seed)
    if snapshots is not None:
        snapshots.recipe_extra = resolved.provenance()
        snapshots.check(resolved.recipe.epochs)
    ckpt = Path(str(out) + ".ckpt")
    key = training_key(arch, arch_args_for(arch, arch_arg), data, watermark_layer, watermark_bits,
                       watermark_strength, watermark_message, key_out, resume, [out, *inputs], quiet or json_out)
    info(resolved.describe(), quiet or json_out)  # last check passed: training starts now
    loaded = fit(arch, data, resolved.recipe, arch_args=arch_args_for(arch, arch_arg), device=device,
                 checkpoint_path=ckpt, resume=resume, quiet=quiet, limit=limit,
                 extra_loss=watermark_loss(key) if key is not None else None, snapshots=snapshots)
    loaded.meta.recipe = {**loaded.meta.recipe, **resolved.provenance()}
    save_model(loaded.model, out, loaded.meta, inputs=inputs)
    ckpt.unlink(missing_ok=True)
    payload = {"path": str(out), **loaded.meta.metrics}
    if snapshots is not None:
        payload["snapshots"] = [str(p) for p in snapshots.written]
    if key is not None:
        payload["watermark"] = training_report(loaded, key, key_out)
    if json_out:
        print_json(payload)
    elif not quiet:
        console.print(f"wrote {out}: test accuracy {loaded.meta.metrics['test_accuracy']:.2f}% "
                      f"on {loaded.meta.metrics['test_n']} images")
        if key is not None:
            console.print(f"watermark key {key_out}: BER {payload['watermark']['ber']:.2f} % "
                          f"(keep the key secret and apart from the model)")


@app.command("eval")
def eval_cmd(
    model: Annotated[Path, typer.Argument(help="Model file (.safetensors, or a .pt/.pth state dict with --arch).")],
    data: DataOpt,
    arch: ArchOpt = None,
    arch_arg: ArchArgOpt = None,
    split: Annotated[str, typer.Option(help="train, val, test or trainval.")] = "test",
    limit: Annotated[Optional[int], typer.Option(help="Evaluate only the first N images.")] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 512,
    device: DeviceOpt = DEVICE_DEFAULT,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Top-1 accuracy and error (%) of a model on a dataset split.

    JSON: {"accuracy": 0-100, "error": 0-100, "n": images}.
    Example: nnf eval lenet.safetensors --data mnist --json
    """
    dev = resolve_device(device)  # fail fast, before reading model and data
    check_batch_size(batch_size)
    loaded = open_model(model, arch, arch_arg, device="cpu")
    dataset = load_dataset(data, split, limit=limit)
    check_data_fits(loaded, dataset)
    norm = loaded.meta.normalization if loaded.meta.normalization is not None else dataset.info.normalization
    result = evaluate(loaded.model, dataset, normalization=norm, device=dev, batch_size=batch_size)
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
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Every layer's name, type and parameter shapes (the names other commands accept).

    Example: nnf layers --arch lenet   or   nnf layers model.safetensors --json
    """
    net = model_or_arch(model, arch, arch_arg).model
    rows = layer_rows(net)
    if json_out:
        print_json(rows)
        return
    console.print(table(None, ["layer", "type", "parameters"],
                        [[r["name"], r["type"], ", ".join(f"{k} {tuple(v)}" for k, v in r["parameters"].items())]
                         for r in rows]))
    if not quiet:
        console.print(f"{len(rows)} layers, {sum(p.numel() for p in net.parameters()):,} parameters")


def layer_rows(net: torch.nn.Module) -> list[dict]:
    """``[{"name", "type", "parameters": {name: shape}}]`` for modules owning parameters or buffers."""
    rows = []
    for name, module in net.named_modules():
        own = {k: list(v.shape) for k, v in module.named_parameters(recurse=False)}
        own.update({k: list(v.shape) for k, v in module.named_buffers(recurse=False) if v is not None})
        if own:
            rows.append({"name": name or "(root)", "type": type(module).__name__, "parameters": own})
    return rows


@app.command("models")
def models_cmd(json_out: JsonOpt = False, quiet: QuietOpt = False, debug: DebugOpt = False) -> None:
    """Built-in architectures (names for --arch)."""
    specs = list_models()
    rows = [{"name": s.name, "family": s.family, "input_shape": list(s.input_shape),
             "torchvision": s.torchvision, "description": s.description} for s in specs]
    if json_out:
        print_json(rows)
        return
    console.print(table("built-in architectures", ["name", "family", "input", "torchvision layout", "description"],
                        [[r["name"], r["family"], r["input_shape"], r["torchvision"] or "", r["description"]]
                         for r in rows]))
    if not quiet:
        console.print("user architectures: --arch path/to/file.py:ClassName or --arch package.module:factory")


@app.command("datasets")
def datasets_cmd(json_out: JsonOpt = False, quiet: QuietOpt = False, debug: DebugOpt = False) -> None:
    """Built-in dataset readers (names for --data) and where each is read from."""
    rows = [{"name": e.name, "description": e.description, "source": e.default_source(),
             "needs_path": e.needs_path} for e in list_datasets()]
    if json_out:
        print_json(rows)
        return
    console.print(table("datasets (--data NAME or NAME:PATH)", ["name", "description", "read from"],
                        [[r["name"], r["description"], r["source"]] for r in rows]))


