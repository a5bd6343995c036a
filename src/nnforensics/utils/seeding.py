"""Deterministic random streams derived from user seeds."""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed derived from any parts (stable across runs and machines)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def torch_generator(*parts: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``parts``."""
    gen = torch.Generator()
    gen.manual_seed(derive_seed(*parts))
    return gen


def numpy_rng(*parts: object) -> np.random.Generator:
    """A numpy ``Generator`` seeded from ``parts``."""
    return np.random.default_rng(derive_seed(*parts))
