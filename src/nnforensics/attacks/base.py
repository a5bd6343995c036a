"""The common base of the input attacks: validation, eval mode, gradients w.r.t. the input only.

Models take inputs in ``[0, 1]`` and return logits ``(B, classes)``; input normalisation
belongs inside the model (e.g. :class:`nnforensics.models.Normalized`,
``LoadedModel.classifier()``), so that ``eps`` is measured in pixel units.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, DataError, ShapeMismatchError

#: How far inputs may stray outside [0, 1] (float rounding of a division by 255 or of a resize).
RANGE_TOLERANCE = 1e-6


def check_eps(eps: object) -> float:
    """``eps`` as a float if it is a finite number in [0, 1], else :class:`ConfigError`."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (math.isfinite(eps) and 0 <= eps <= 1):
        raise ConfigError(f"eps must be a finite number in [0, 1] (inputs are in [0, 1]), got {eps!r}")
    return float(eps)


def check_positive_int(value: object, what: str) -> int:
    """``value`` if it is an integer >= 1, else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)


def check_shapes(x: torch.Tensor, y: torch.Tensor) -> None:
    """Tensors, not empty, one label per input (DataError / ShapeMismatchError)."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise DataError(f"inputs and labels must be tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.dim() == 0 or len(x) == 0:
        raise DataError("the inputs to attack are empty")
    if y.dim() != 1 or len(x) != len(y):
        raise ShapeMismatchError(f"{len(x)} inputs but labels of shape {tuple(y.shape)} (expected ({len(x)},))")


def check_inputs(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated ``(x float32 (B, ...), y int64 (B,))``; inputs must lie in [0, 1].

    Raises:
        DataError: empty, non-finite or out-of-range inputs, or labels that are not integers.
        ShapeMismatchError: ``x`` and ``y`` of different lengths, or ``y`` not of shape (B,).
    """
    check_shapes(x, y)
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise DataError(f"labels must be integer class indices, got {y.dtype}")
    if x.dtype == torch.uint8:
        raise DataError("inputs are uint8 images: convert them to float in [0, 1] first "
                        "(nnforensics.data.to_float)")
    x = x.float()
    check_range(x)
    return x, y.long()


def check_range(x: torch.Tensor) -> None:
    """:class:`DataError` unless ``x`` (float) is finite and within [0, 1] (up to :data:`RANGE_TOLERANCE`)."""
    if not torch.isfinite(x).all():
        raise DataError("the inputs contain NaN or Inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise DataError(f"inputs must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; normalisation belongs "
                        "inside the model (nnforensics.models.Normalized, LoadedModel.classifier())")


def model_device(model: nn.Module, default: torch.device) -> torch.device:
    """The device of the model's first parameter or buffer (``default`` for a model without any)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return default


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run with every submodule in eval mode; restore each one's own flag afterwards, even on error."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


class Attack:
    """Base of the untargeted L-infinity attacks on a classifier's inputs.

    Args:
        model: takes ``(B, ...)`` inputs in [0, 1], returns logits ``(B, classes)``.
        eps: the L-infinity budget, a finite number in [0, 1] (pixel units).

    Calling ``attack(x, y)`` runs the model in eval mode (each submodule's flag restored
    afterwards), takes gradients with respect to the input only (parameters' ``.grad``,
    ``requires_grad`` and BatchNorm statistics are left untouched) and works in float32 on
    the model's device.
    """

    name: str = ""

    def __init__(self, model: nn.Module, *, eps: float):
        if not isinstance(model, nn.Module):
            raise ConfigError(f"the model to attack must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.eps = check_eps(eps)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, *, index: int = 0) -> torch.Tensor:
        """Adversarial inputs for one batch.

        Args:
            x: inputs (B, ...) float in [0, 1].
            y: labels (B,) int64.
            index: dataset position of ``x[0]``: random starts are drawn per sample from
                ``(seed, index + i)``, so results do not depend on how a dataset is batched.

        Returns:
            ``x_adv`` (B, ...) float32 on ``x``'s device, in [0, 1], ``|x_adv - x|_inf <= eps``.
        """
        x32, y = check_inputs(x, y)
        if self.eps == 0:
            return x32.clone()
        device = model_device(self.model, x.device)
        with eval_mode(self.model), torch.enable_grad():
            adv = self.perturb(x32.to(device), y.to(device), index)
        return adv.detach().to(x.device)

    def perturb(self, x: torch.Tensor, y: torch.Tensor, index: int) -> torch.Tensor:
        """The attack itself on validated ``x`` (B, ...) float32, ``y`` (B,) on the model's device."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Every parameter, JSON-serialisable: ``{"attack": name, "eps": ...}``."""
        return {"attack": self.name, "eps": self.eps}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "attack")
        return f"{type(self).__name__}({args})"

    def input_gradient(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """d(cross-entropy)/dx (B, ...) for inputs ``x`` (B, ...) and labels ``y`` (B,).

        The loss is summed over the batch, so each sample's gradient does not depend on
        the batch size (only its sign is used). ``torch.autograd.grad`` with respect to the
        input alone leaves the parameters' ``.grad`` untouched.
        """
        x = x.detach().requires_grad_(True)
        logits = self.model(x)
        check_logits(logits, y)
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        return grad


def check_logits(logits: object, y: torch.Tensor) -> None:
    """:class:`ShapeMismatchError` unless ``logits`` is (B, classes) with every label ``y`` (B,) < classes."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or len(logits) != len(y):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ShapeMismatchError(f"a classifier must return logits of shape (batch, classes); "
                                 f"the model returned {shape} for a batch of {len(y)}")
    if int(y.min()) < 0 or int(y.max()) >= logits.shape[1]:
        raise ShapeMismatchError(f"labels must lie in [0, {logits.shape[1] - 1}] for a model with "
                                 f"{logits.shape[1]} outputs, got [{int(y.min())}, {int(y.max())}]")
