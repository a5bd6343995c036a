"""Loading the models and data that commands are given."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..data.registry import ArrayDataset
from ..errors import ConfigError, ShapeMismatchError, UnknownNameError
from ..io.limits import MAX_INPUT_DIMS, MAX_INPUT_VALUES, MAX_RECORDED_INPUT_VALUES
from ..io.meta import ModelMeta
from ..models.loading import LoadedModel, check_input_shape, load_model
from ..models.registry import accepts_argument, is_user_arch, parse_arch_args

if TYPE_CHECKING:
    from ..graph import Inputs


def arch_args_for(arch: str | None, items: list[str] | None) -> dict[str, Any]:
    """Parse ``--arch-arg KEY=VALUE`` options and reject keys ``arch`` does not take.

    Registry architectures check their arguments when built; a user's constructor
    would silently drop unknown keys, so a typo is caught here.
    """
    args = parse_arch_args(items)
    if arch is not None and is_user_arch(arch):
        unknown = [k for k in args if not accepts_argument(arch, k)]
        if unknown:
            raise ConfigError(f"user architecture {arch!r} does not take argument(s) {', '.join(unknown)}")
    return args


def check_method(method: str) -> str:
    """``--method`` of resync/compare, checked before any model is loaded."""
    from ..resynchronization import METHODS

    if method not in METHODS:
        raise UnknownNameError("method", method, METHODS)
    return method


def open_model(path: Path | str, arch: str | None, arch_args: list[str] | None, device: str = "cpu",
               inputs: GivenInputs | None = None) -> LoadedModel:
    """A model file plus the optional ``--arch`` / ``--arch-arg`` (and ``--input-shape``) the user gave."""
    shape = inputs.recorded_shape() if inputs is not None else None
    return load_model(path, arch=arch, arch_args=arch_args_for(arch, arch_args) or None, input_shape=shape,
                      device=device)


def model_or_arch(model: Path | str | None, arch: str | None, arch_args: list[str] | None,
                  inputs: GivenInputs | None = None) -> LoadedModel:
    """A model file, or (without one) a freshly initialised ``--arch``: for commands that only
    need the architecture (``layers``, ``groups``)."""
    if model is not None:
        return open_model(model, arch, arch_args, inputs=inputs)
    if arch is None:
        raise ConfigError("give a model file or --arch NAME (see `nnf models`)")
    from ..models.factory import create_model

    loaded = create_model(arch, arch_args_for(arch, arch_args))
    return record_input_shape(loaded, inputs.recorded_shape() if inputs is not None else None)


def record_input_shape(loaded: LoadedModel, shape: list[int] | None) -> LoadedModel:
    """A fresh model's metadata with the given input shape (checked against its architecture,
    so that no file written from it fails to load); ``loaded`` itself when ``shape`` is None."""
    if shape:
        check_input_shape(loaded.meta.arch, loaded.meta.arch_args, shape)
        loaded.meta.input_shape = shape
    return loaded


# ---------------------------------------------------------------- --input-shape / --example-inputs

_SHAPE_PART = re.compile(r"^\s*\d{1,12}\s*$")
INPUTS_HINT = "pass --input-shape C,H,W (or L for sequences, N for vectors) or --example-inputs FILE"


@dataclass
class GivenInputs:
    """What ``--input-shape`` / ``--example-inputs`` gave (both None: the model file's record)."""

    shape: list[int] | None = None
    tensors: torch.Tensor | dict[str, torch.Tensor] | None = None
    path: Path | None = None

    def recorded_shape(self) -> list[int] | None:
        """The input shape to record in the files written: ``--input-shape``, or the shape
        of a single floating-point example tensor (token ids cannot be drawn at random)."""
        if self.shape is not None:
            return self.shape
        if isinstance(self.tensors, torch.Tensor) and self.tensors.is_floating_point() and self.tensors.dim() >= 2:
            return [int(s) for s in self.tensors.shape[1:]]
        return None

    def files(self) -> list[Path]:
        """Input files to protect from being overwritten by an output."""
        return [self.path] if self.path is not None else []


def parse_input_shape(text: str | None) -> list[int] | None:
    """``"3,32,32"`` -> ``[3, 32, 32]`` (None for None): 1 to 4 positive integers separated by commas.

    Raises:
        ConfigError: anything else (empty parts, letters, zero, too many axes, too many values),
            in command-line words.
    """
    if text is None:
        return None
    parts = text.split(",")
    if not all(_SHAPE_PART.match(p) for p in parts) or any(int(p) < 1 for p in parts):
        raise ConfigError(f"--input-shape must be positive integers separated by commas, like 3,32,32 (images) "
                          f"or 20 (vectors), without the batch axis; got {text!r}")
    if len(parts) > MAX_INPUT_DIMS:
        raise ConfigError(f"--input-shape {text} has {len(parts)} axes; one input has 1 to {MAX_INPUT_DIMS} "
                          f"(e.g. C,H,W), without the batch axis")
    shape = [int(p) for p in parts]
    if math.prod(shape) > MAX_INPUT_VALUES:
        raise ConfigError(f"--input-shape {text} asks for {math.prod(shape):,} values per input; "
                          f"at most {MAX_INPUT_VALUES:,}")
    return shape


def given_inputs(input_shape: str | None, example_inputs: Path | None) -> GivenInputs:
    """Parse ``--input-shape`` and read ``--example-inputs`` (at most one of them)."""
    if input_shape is not None and example_inputs is not None:
        raise ConfigError("give --input-shape or --example-inputs, not both")
    if example_inputs is not None:
        from ..io.inputs import read_example_inputs

        return GivenInputs(tensors=read_example_inputs(example_inputs), path=Path(example_inputs))
    return GivenInputs(shape=parse_input_shape(input_shape))


def model_inputs(loaded: LoadedModel, given: GivenInputs | None = None, n: int = 2) -> Inputs:
    """What the model is fed to find its groups: the ``--example-inputs`` tensors (floating ones
    in the model's float dtype), or a random batch (n, *input_shape) of the recorded shape."""
    from ..graph import example_inputs_for
    from ..io.inputs import for_model

    if given is not None and given.tensors is not None:
        return for_model(given.tensors, loaded.model)
    if not loaded.meta.input_shape:
        what = (f"{loaded.path.name!r} does not record its model's input shape" if loaded.path is not None
                else f"the input shape of architecture {loaded.meta.arch!r} is unknown")
        raise ConfigError(f"{what}: {INPUTS_HINT}")
    if given is None or given.shape is None:
        _check_recorded_shape(loaded)
    return (example_inputs_for(loaded.meta, n=n),)


def _check_recorded_shape(loaded: LoadedModel) -> None:
    """A shape read from a file feeds random inputs only up to a sane size; larger ones must be confirmed."""
    shape = loaded.meta.input_shape
    values = math.prod(shape)
    if values > MAX_RECORDED_INPUT_VALUES:
        where = repr(loaded.path.name) if loaded.path is not None else "the model"
        raise ConfigError(f"{where} records an input shape {tuple(shape)} of {values:,} values; random example "
                          f"inputs drawn from a file's record are at most {MAX_RECORDED_INPUT_VALUES:,} values. If "
                          f"that is really the model's input, pass it explicitly: --input-shape "
                          f"{','.join(map(str, shape))} (or --example-inputs FILE)")


def _imported(meta: ModelMeta) -> bool:
    """True when the metadata was made up on load (a state dict without nnforensics metadata)."""
    return bool(meta.history) and meta.history[0].get("op") == "import"


def check_data_fits(loaded: LoadedModel, data: ArrayDataset) -> None:
    """Refuse data whose image shape differs from the one the model file records.

    A model with global pooling would run on the wrong image size and report a
    meaningless accuracy. For imported state dicts only the channel count is
    known for sure (the recorded size is the architecture's default).
    """
    expected, given = list(loaded.meta.input_shape), list(data.x.shape[1:])
    if not expected or expected == given:
        return
    if _imported(loaded.meta) and len(expected) == len(given) and expected[:1] == given[:1]:
        return
    raise ShapeMismatchError(
        f"the model expects inputs of shape {tuple(expected)} but dataset {data.info.name!r} has "
        f"{tuple(given)}; evaluate it on the data it was built for"
    )
