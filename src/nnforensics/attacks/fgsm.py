"""FGSM: one signed-gradient step (Goodfellow et al., 2015, "Explaining and harnessing adversarial examples")."""

from __future__ import annotations

import torch

from .base import Attack


class FGSM(Attack):
    """``x_adv = clamp(x + eps * sign(d CE(model(x), y) / dx), 0, 1)``.

    Args:
        model: takes ``(B, ...)`` inputs in [0, 1], returns logits ``(B, classes)``.
        eps: the L-infinity budget, a finite number in [0, 1].
    """

    name = "fgsm"

    def __init__(self, model: torch.nn.Module, *, eps: float):
        super().__init__(model, eps=eps)

    def perturb(self, x: torch.Tensor, y: torch.Tensor, index: int) -> torch.Tensor:
        """``x`` (B, ...) float32, ``y`` (B,) -> ``x_adv`` (B, ...); ``index`` is unused (no randomness)."""
        grad = self.input_gradient(x, y)
        return torch.clamp(x + self.eps * grad.sign(), min=0, max=1)
