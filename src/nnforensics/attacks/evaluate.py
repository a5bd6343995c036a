"""Attacking whole datasets in batches: adversarial examples and accuracy under attack."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn

from ..data import to_float
from ..errors import ConfigError
from ..utils.device import resolve_device
from ..utils.progress import track
from .base import Attack, check_logits, check_positive_int, check_range, check_shapes, eval_mode


def adversarial_examples(attack: Attack, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256,
                         device: str | torch.device = "cpu", quiet: bool = True) -> torch.Tensor:
    """``attack`` applied to a whole dataset in batches of ``batch_size`` on ``device``.

    Args:
        attack: e.g. ``PGD(model, eps=0.1)``; its model is moved to ``device`` (and left there).
        x: inputs (N, ...) float in [0, 1], or uint8 images (divided by 255), on any device.
        y: labels (N,) int64.
        batch_size: inputs per batch; results do not depend on it.
        device: where the attack runs (``cpu``, ``cuda``, ``mps``, ``auto``).
        quiet: no progress bar.

    Returns:
        ``x_adv`` (N, ...) float32 on the CPU.
    """
    out = torch.empty(x.shape if isinstance(x, torch.Tensor) else (0,), dtype=torch.float32)
    for start, adv, _ in _attacked_batches(attack, x, y, batch_size, device, quiet):
        out[start:start + len(adv)] = adv.cpu()
    return out


def accuracy_under_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack, *,
                          batch_size: int = 256, device: str | torch.device = "cpu") -> dict[str, float | int]:
    """Top-1 ``{"accuracy": %, "n": N}`` of ``model`` on ``attack``'s adversarial versions of ``x``, ``y``.

    The inputs are crafted against ``attack.model``: normally ``model`` itself (white-box);
    another model gives the transfer accuracy. Both are moved to ``device``, run in eval mode
    and get their modules' train flags back afterwards.

    Args:
        model: the classifier evaluated (inputs in [0, 1], logits (B, classes)).
        x: inputs (N, ...) float in [0, 1] (or uint8); y: labels (N,) int64.
        attack: e.g. ``FGSM(model, eps=0.1)``.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"the model to evaluate must be a torch.nn.Module, got {type(model).__name__}")
    dev = resolve_device(device)
    model.to(dev)
    correct = 0
    with eval_mode(model), torch.no_grad():
        for _, adv, labels in _attacked_batches(attack, x, y, batch_size, dev, quiet=True):
            logits = model(adv)
            check_logits(logits, labels)
            correct += int((logits.argmax(1) == labels).sum())
    n = len(y)  # integer counts: a float32 mean would report 15.000000596 %
    return {"accuracy": 100.0 * correct / n, "n": n}


def _attacked_batches(attack: Attack, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                      device: str | torch.device, quiet: bool) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """``(start, x_adv (B, ...) on device, y (B,) on device)`` per batch, the whole dataset checked first."""
    if not isinstance(attack, Attack):
        raise ConfigError(f"attack must be an nnforensics.attacks.Attack (see make_attack), "
                          f"got {type(attack).__name__}")
    _check_dataset(x, y)
    batch_size = check_positive_int(batch_size, "batch size")
    dev = resolve_device(device)
    attack.model.to(dev)
    starts = range(0, len(x), batch_size)
    for start in track(starts, f"{attack.name} eps={attack.eps:g}", quiet=quiet):
        xb = to_float(x[start:start + batch_size]).to(dev)
        yb = y[start:start + batch_size].to(dev)
        yield start, attack(xb, yb, index=start), yb


def _check_dataset(x: torch.Tensor, y: torch.Tensor) -> None:
    """Errors before any work: not tensors, empty, lengths that differ, values outside [0, 1]."""
    check_shapes(x, y)
    if x.dtype != torch.uint8:
        check_range(x.float())
