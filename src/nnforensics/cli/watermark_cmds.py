"""nnf watermark embed / extract / verify: Uchida et al. (2017) white-box watermarks.

The key file written by ``embed`` (or ``nnf train --watermark-layer``) is the owner's
secret: without it the mark cannot be read, so it is never overwritten.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import ConfigError
from ..io.modelfile import check_model_output, save_model
from ..utils.atomic import check_not_input
from ..utils.progress import info
from . import app
from .common import (
    ArchArgOpt,
    ArchOpt,
    DebugOpt,
    DEVICE_DEFAULT,
    DeviceOpt,
    ExampleInputsOpt,
    InputShapeOpt,
    JsonOpt,
    QuietOpt,
    console,
    print_json,
    table,
)
from .loading import given_inputs, model_inputs, open_model

watermark_app = typer.Typer(
    name="watermark",
    help="White-box watermarks (Uchida et al. 2017): embed, extract, verify after re-synchronization.",
    no_args_is_help=True,
)
app.add_typer(watermark_app, name="watermark")

KeyOpt = Annotated[Path, typer.Option("--key", help="The watermark key (JSON) written by `nnf watermark embed`.")]
FprOpt = Annotated[float, typer.Option(
    "--fpr", help="False-positive rate: detected iff P(Binomial(T, 1/2) >= matched bits) <= FPR.")]
LayerOpt = Annotated[str, typer.Option("--layer", help="Conv/Linear layer to watermark (see nnf layers).")]
BitsOpt = Annotated[int, typer.Option("--bits", help="Number of bits T (at most len(w) of the layer).")]
StrengthOpt = Annotated[float, typer.Option("--strength", help="Weight lambda of the watermark regulariser.")]
MessageOpt = Annotated[Optional[str], typer.Option(
    "--message", help="Text (UTF-8) or 0x-prefixed hex to embed, padded with zeros or truncated to T bits "
    "(default: random bits).")]
KeyOutOpt = Annotated[Path, typer.Option("--key-out", help="Write the key here (JSON; a secret: keep it apart "
                                         "from the model; never overwritten).")]


def _check_key_out(key_out: Path, model_out: Path, inputs: list[Any]) -> None:
    """A new key file must not be the model output, an input, or an existing key."""
    if key_out.resolve() == Path(model_out).resolve():
        raise ConfigError(f"--key-out {str(key_out)!r} is also the model output; choose another file")
    check_not_input(key_out, inputs)
    if key_out.exists():
        raise ConfigError(f"key file {str(key_out)!r} already exists; a watermark key is the only way to read its "
                          f"model's mark, so it is never overwritten: delete it or choose another --key-out")


def _extract_line(label: str, result: dict[str, Any]) -> str:
    verdict = "DETECTED" if result["detected"] else "not detected"
    return (f"{label}BER {result['ber']:.2f} % ({result['matched']}/{result['bits']} bits match), "
            f"p-value {result['p_value']:.3g}, threshold {result['threshold']} bits at FPR {result['fpr']:g}: "
            f"{verdict}" + (f"; message {result['message']!r}" if result.get("message") is not None else ""))


@watermark_app.command("embed")
def embed_cmd(
    model: Annotated[Path, typer.Argument(help="Model file to watermark (.safetensors; .pt with --arch).")],
    data: Annotated[str, typer.Option("--data", help="Training data, NAME or NAME:PATH (see nnf datasets).")],
    layer: LayerOpt,
    key_out: KeyOutOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output (watermarked) model file (.safetensors).")],
    bits: BitsOpt = 64,
    strength: StrengthOpt = 0.1,
    message: MessageOpt = None,
    epochs: Annotated[float, typer.Option("--epochs", help="Epochs of fine-tuning (fractions allowed).")] = 1.0,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate (default: the recorded recipe's).")] = None,
    optimizer: Annotated[Optional[str], typer.Option(
        "--optimizer", help="sgd or adam (default: the recorded recipe's; needed, with --lr, for a model "
        "without one).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Fine-tune on the first N training images.")] = None,
    eval_limit: Annotated[Optional[int], typer.Option(
        "--eval-limit", help="Measure accuracy on the first N test images (default: all).")] = None,
    fpr: FprOpt = 1e-6,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fine-tuning data order.")] = 0,
    key_seed: Annotated[Optional[int], typer.Option(
        "--key-seed", help="Seed of the secret key (default: a fresh random one; give one only for "
        "reproducible experiments).")] = None,
    arch: ArchOpt = None,
    arch_arg: ArchArgOpt = None,
    device: DeviceOpt = DEVICE_DEFAULT,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Fine-tune a model with the watermark regulariser lambda * BCE(sigmoid(X w), b).

    w is the layer's weight averaged over its output filters; X is a secret Gaussian
    matrix (T, len(w)) regenerated from the key's seed. The model's recorded recipe
    (optimiser, learning rate and schedule) is run again for --epochs epochs.

    JSON: {"path", "key", "layer", "bits", "ber", "matched", "p_value", "detected",
    "accuracy_before", "accuracy_after", "eval_n", "epochs", "steps", ...}.
    Example: nnf watermark embed lenet.safetensors --data mnist --layer fc1 --key-out key.json -o marked.safetensors
    """
    from ..data.registry import load_dataset
    from ..training import Recipe
    from ..watermark import (
        detection_threshold,
        embed,
        embedding_recipe,
        make_key,
        save_key,
    )

    check_model_output(out, [model])
    _check_key_out(key_out, out, [model])
    if bits >= 1:
        detection_threshold(bits, fpr)  # a mark that could never be detected: say so before any work
    loaded = open_model(model, arch, arch_arg)
    key, note = make_key(loaded, layer, bits, message=message, strength=strength, seed=key_seed)
    if note:
        info(f"note: {note}", quiet or json_out)
    recipe = None
    if not loaded.meta.recipe or optimizer is not None:
        if not loaded.meta.recipe and (optimizer is None or lr is None):
            raise ConfigError(f"{str(model)!r} records no training recipe to fine-tune with; "
                              f"pass --optimizer and --lr")
        base = Recipe.from_dict(loaded.meta.recipe) if loaded.meta.recipe else Recipe()
        recipe = embedding_recipe(replace(base, optimizer=optimizer or base.optimizer), epochs, lr, seed)
    test = load_dataset(data, "test", limit=eval_limit)
    result = embed(loaded, key, data, epochs=epochs, lr=lr, recipe=recipe, limit=limit, eval_data=test,
                   fpr=fpr, seed=seed, device=device, quiet=quiet or json_out)
    save_key(key_out, key)  # first: a marked model whose key was lost could never be verified
    save_model(result.model, out, result.meta, inputs=[model])
    payload = {"path": str(out), "key": str(key_out), **result.to_dict()}
    payload["notes"] = [note, *result.notes] if note else result.notes
    if json_out:
        print_json(payload)
        return
    for line in result.notes:
        info(f"warning: {line}", quiet)
    if not quiet:
        console.print(f"wrote {out} and the key {key_out} ({key.describe()}); "
                      f"test accuracy {result.accuracy_before:.2f} % -> {result.accuracy_after:.2f} % "
                      f"on {result.eval_n} images")
        console.print(_extract_line("read back: ", result.extract.to_dict()))
        console.print(f"keep {key_out} secret and apart from the model")


@watermark_app.command("extract")
def extract_cmd(
    model: Annotated[Path, typer.Argument(help="Model file (.safetensors, or .pt with --arch).")],
    key: KeyOpt,
    fpr: FprOpt = 1e-6,
    arch: ArchOpt = None,
    arch_arg: ArchArgOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Read the watermark of a model with its key: bit error rate and detection.

    JSON: {"ber": 0-100, "bits": T, "matched", "p_value", "detected", "threshold", "fpr",
    "layer"} (+ "message" for text/hex keys).
    Example: nnf watermark extract marked.safetensors --key key.json --json
    """
    from ..watermark import detection_threshold, extract, load_key

    wm_key = load_key(key)
    detection_threshold(wm_key.n_bits, fpr)  # refuse before reading the model
    loaded = open_model(model, arch, arch_arg)
    result = extract(loaded, wm_key, fpr).to_dict()
    if json_out:
        print_json(result)
    else:
        console.print(_extract_line("", result))


@watermark_app.command("verify")
def verify_cmd(
    suspect: Annotated[Path, typer.Argument(help="The suspect model file (same architecture as the original).")],
    key: KeyOpt,
    original: Annotated[Path, typer.Option("--original", help="The owner's original (watermarked) model file.")],
    method: Annotated[str, typer.Option("--method", help="Re-synchronization: lap (default), argmax, "
                                        "weight-matching or rank.")] = "lap",
    fpr: FprOpt = 1e-6,
    arch: ArchOpt = None,
    arch_arg: ArchArgOpt = None,
    input_shape: InputShapeOpt = None,
    example_inputs: ExampleInputsOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Re-synchronize the suspect to the original, then read the watermark (Find the Lady, Fig. 7).

    A permutation of the layer feeding the watermarked one scrambles w (BER ~ 50 %);
    putting the neurons back in order restores it.

    JSON: {"raw": {...}, "resynchronized": {...}, "detected", "psi_unknown": true,
    "unambiguous": %, "permuted_groups", "method"} (each {...} as `nnf watermark extract`).
    Example: nnf watermark verify suspect.safetensors --key key.json --original marked.safetensors
    """
    from ..errors import UnknownNameError
    from ..resynchronization import METHODS
    from ..watermark import detection_threshold, key_weight, load_key, verify

    if method not in METHODS:
        raise UnknownNameError("method", method, METHODS)
    wm_key = load_key(key)
    detection_threshold(wm_key.n_bits, fpr)
    given = given_inputs(input_shape, example_inputs)
    orig = open_model(original, arch, arch_arg, inputs=given)
    sus = open_model(suspect, arch, arch_arg, inputs=given)
    for loaded in (orig, sus):  # a key that does not fit: say so before re-synchronizing
        key_weight(loaded, wm_key)
    inputs = model_inputs(orig, given)
    info("re-synchronizing the suspect to the original ...", quiet or json_out)
    result = verify(sus, orig, wm_key, method=method, fpr=fpr, example_inputs=inputs, quiet=quiet or json_out)
    payload = result.to_dict()
    if json_out:
        print_json(payload)
        return
    rows = [[label, r["ber"], f"{r['matched']}/{r['bits']}", r["p_value"], r["detected"]]
            for label, r in (("as given", payload["raw"]), ("re-synchronized", payload["resynchronized"]))]
    console.print(table(f"watermark in {wm_key.layer!r} (threshold {payload['raw']['threshold']} bits at FPR {fpr:g})",
                        ["suspect", "BER %", "matched", "p-value", "detected"], rows))
    n = payload["permuted_groups"]
    console.print(f"{n} group{'s were' if n != 1 else ' was'} permuted; {payload['unambiguous']:.1f} % of neurons "
                  f"matched unambiguously ({method}); verdict: "
                  + ("watermark DETECTED" if result.resynchronized.detected else "watermark not detected"))


# ----------------------------------------------------------------- nnf train --watermark-layer

def training_key(arch: str, arch_args: dict[str, Any], data: str, layer: str | None, bits: int | None,
                 strength: float | None, message: str | None, key_out: Path | None, resume: bool,
                 outputs: list[Any], quiet: bool) -> Any:
    """The key ``nnf train --watermark-layer`` embeds (None without that option), written before training.

    With ``--resume`` an existing key file is reused (a resumed run must keep the same
    secret), after checking that it is the watermark asked for.
    """
    from ..data.registry import dataset_info
    from ..models.factory import create_model
    from ..watermark import (
        DEFAULT_BITS,
        DEFAULT_STRENGTH,
        load_key,
        make_key,
        message_bits,
        save_key,
    )
    from ..watermark.key import fit_bits

    if layer is None:
        given = [flag for flag, value in (("--watermark-bits", bits), ("--watermark-strength", strength),
                                          ("--watermark-message", message), ("--key-out", key_out)) if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} only apply with --watermark-layer NAME")
        return None
    if key_out is None:
        raise ConfigError("--watermark-layer needs --key-out FILE: the key is the only way to read the mark back")
    bits = DEFAULT_BITS if bits is None else bits
    strength = DEFAULT_STRENGTH if strength is None else strength
    shape_model = create_model(arch, arch_args, data=dataset_info(data))  # only its layer shapes are used
    if resume and key_out.exists():
        key = load_key(key_out)
        wanted = fit_bits(message_bits(message), bits)[0] if message is not None else None
        if key.layer != layer or key.n_bits != bits or key.strength != strength or \
                (wanted is not None and list(key.bits) != wanted):
            raise ConfigError(f"key file {str(key_out)!r} holds another watermark ({key.describe()}, strength "
                              f"{key.strength:g}); a resumed run must embed the same one: delete both the key "
                              f"and the checkpoint, or train without --resume")
        from ..watermark import key_weight

        key_weight(shape_model, key)
        info(f"resuming with the watermark key {key_out}", quiet)
        return key
    _check_key_out(key_out, outputs[0], outputs[1:])
    key, note = make_key(shape_model, layer, bits, message=message, strength=strength)
    if note:
        info(f"note: {note}", quiet)
    save_key(key_out, key)  # before training: an interrupted run resumes with the same secret
    return key


def training_report(model: Any, key: Any, key_out: Path) -> dict[str, Any]:
    """What ``nnf train --watermark-layer`` reports: the mark read back (detection at the default FPR
    when the key's T bits can reach it, else the bit error rate alone)."""
    from ..watermark import DEFAULT_FPR, extract, min_bits, watermark_ber

    if key.n_bits >= min_bits(DEFAULT_FPR):
        return {"key": str(key_out), **extract(model, key, DEFAULT_FPR).to_dict()}
    return {"key": str(key_out), "ber": watermark_ber(model, key), "bits": key.n_bits, "layer": key.layer}
