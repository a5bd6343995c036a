"""How each perturbation is named, ordered and drawn in reports.

The paper sweeps four attacks (Tables 1-4): Gaussian noise (Omega), fine-tuning
(Theta), quantization (B bits) and magnitude pruning (T). Their levels do not all
grow with the attack's strength (fewer bits is stronger), and some read better on a
non-linear axis; this module is the single place that knows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

Scale = Literal["linear", "log2", "log-remaining"]


@dataclass(frozen=True)
class AttackStyle:
    """Presentation of one attack's level axis."""

    key: str
    title: str  # "Gaussian noise"
    symbol: str  # the level's symbol in the paper: Omega, Theta, B, T
    axis_label: str
    stronger_when_higher: bool = True  # False for quantization: fewer bits is stronger
    scale: Scale = "linear"
    order: int = 99  # position among the paper's tables (noise, fine-tuning, quantization, pruning)

    def strength_order(self, levels) -> list:
        """``levels`` sorted from the weakest to the strongest attack."""
        return sorted(levels, reverse=not self.stronger_when_higher)

    def level_text(self, level) -> str:
        """``"Ω = 6"``: a level with its symbol, as written in sentences and captions."""
        return f"{self.symbol} = {format_level(level)}"


_CANONICAL: dict[str, AttackStyle] = {
    "noise": AttackStyle("noise", "Gaussian noise", "Ω", "Ω (noise std in units of the layer's weight std)", order=1),
    "finetune": AttackStyle("finetune", "fine-tuning", "Θ", "Θ (% of the original training epochs)", order=2),
    "quantize": AttackStyle(
        "quantize", "quantization", "B", "B (bits per weight)", stronger_when_higher=False, scale="log2", order=3
    ),
    "prune": AttackStyle("prune", "magnitude pruning", "T", "T (fraction of weights pruned)", scale="log-remaining", order=4),
    # Integrity attack (paper §3.4): every cosine stays 1 while the outputs change.
    "scale": AttackStyle("scale", "neuron scaling", "K", "K (factor multiplying the neurons' weights)", scale="log2", order=5),
}

# Names the sweep engine or a user may write for the same attack.
_ALIASES = {
    "noise": "noise", "gaussian": "noise", "gaussian-noise": "noise", "gauss": "noise",
    "finetune": "finetune", "fine-tune": "finetune", "fine-tuning": "finetune", "finetuning": "finetune", "ft": "finetune",
    "quantize": "quantize", "quantise": "quantize", "quantization": "quantize", "quantisation": "quantize", "quant": "quantize",
    "prune": "prune", "pruning": "prune", "magnitude-pruning": "prune", "magnitude": "prune",
    "scale": "scale", "scaling": "scale",
}
# Variants such as "prune-global" keep the family's axis and say which variant it is.
_PREFIXES = (("nois", "noise"), ("gauss", "noise"), ("fine", "finetune"), ("quant", "quantize"), ("prun", "prune"))


def _normalise(name: str) -> str:
    return re.sub(r"[\s_]+", "-", str(name).strip().lower())


def attack_style(name: str | None) -> AttackStyle:
    """The style of attack ``name`` (aliases and variants accepted; unknown names get a plain linear axis)."""
    norm = _normalise(name or "")
    if norm in _ALIASES:
        return _CANONICAL[_ALIASES[norm]]
    for prefix, key in _PREFIXES:
        if norm.startswith(prefix):
            base = _CANONICAL[key]
            return replace(base, key=norm, title=f"{base.title} ({name})")
    label = str(name) if name else "unknown attack"
    return AttackStyle(key=norm or "unknown", title=label, symbol="level", axis_label=f"level ({label})")


def format_level(level) -> str:
    """A level as people write it: ``6``, ``0.95``, ``16``."""
    try:
        return f"{float(level):g}"
    except (TypeError, ValueError):
        return str(level)
