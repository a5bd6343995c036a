"""Deterministic random streams derived from user seeds."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")


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


def seeded_init(factory: Callable[[], T], seed: int) -> T:
    """Build a model with parameters drawn from ``seed`` (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed("init", seed))
        return factory()
