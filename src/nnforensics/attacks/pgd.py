"""PGD L-infinity (Madry et al., 2018, "Towards deep learning models resistant to adversarial attacks")."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from ..errors import ConfigError
from ..utils.seeding import torch_generator
from .base import Attack, check_positive_int


class PGD(Attack):
    """Projected gradient descent in the L-infinity ball of radius ``eps``.

    Starts (``random_start=True``) from ``x`` plus uniform noise in ``[-eps, eps]``, clamped
    to [0, 1], then takes ``steps`` steps of ``step * sign(gradient of the cross-entropy)``,
    each followed by a projection onto the eps-ball around ``x`` and onto [0, 1].

    Args:
        model: takes ``(B, ...)`` inputs in [0, 1], returns logits ``(B, classes)``.
        eps: the L-infinity budget, a finite number in [0, 1].
        step: the step size; ``None`` (default) means ``eps / 4``.
        steps: the number of steps, an integer >= 1.
        random_start: begin at a uniformly random point of the eps-ball.
        seed: the random start of the sample at dataset position ``i`` is drawn from a CPU
            generator seeded by ``(seed, i)``: the same on every device and for every batch size.
    """

    name = "pgd"

    def __init__(self, model: torch.nn.Module, *, eps: float, step: float | None = None, steps: int = 10,
                 random_start: bool = True, seed: int = 0):
        super().__init__(model, eps=eps)
        self.step = self.eps / 4 if step is None else _check_step(step)
        self.steps = check_positive_int(steps, "PGD steps")
        if not isinstance(random_start, bool):
            raise ConfigError(f"random_start must be True or False, got {random_start!r}")
        self.random_start = random_start
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)

    def config(self) -> dict[str, Any]:
        """``{"attack": "pgd", "eps", "step", "steps", "random_start", "seed"}``."""
        return {**super().config(), "step": self.step, "steps": self.steps, "random_start": self.random_start,
                "seed": self.seed}

    def perturb(self, x: torch.Tensor, y: torch.Tensor, index: int) -> torch.Tensor:
        """``x`` (B, ...) float32, ``y`` (B,), ``index`` = dataset position of ``x[0]`` -> ``x_adv`` (B, ...)."""
        adv = x.clone()
        if self.random_start:
            adv = torch.clamp(x + self.start_noise(x.shape, index).to(x.device), min=0, max=1)
        for _ in range(self.steps):
            adv = adv + self.step * self.input_gradient(adv, y).sign()
            delta = torch.clamp(adv - x, min=-self.eps, max=self.eps)
            adv = torch.clamp(x + delta, min=0, max=1)
        return adv

    def start_noise(self, shape: torch.Size, index: int) -> torch.Tensor:
        """Uniform noise in [-eps, eps] of ``shape`` (B, ...) on the CPU, one generator per sample."""
        rows = [torch.rand(shape[1:], generator=torch_generator("pgd-start", self.seed, index + i))
                for i in range(shape[0])]
        return (torch.stack(rows) * 2 - 1) * self.eps


def _check_step(step: object) -> float:
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or not (math.isfinite(step) and step > 0):
        raise ConfigError(f"PGD step must be a finite number > 0, got {step!r}")
    return float(step)
