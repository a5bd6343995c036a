"""Attacks by name: ``make_attack("pgd", model, eps=0.1, steps=20)``."""

from __future__ import annotations

import inspect
from typing import Any

import torch.nn as nn

from ..errors import ConfigError, UnknownNameError
from .base import Attack
from .fgsm import FGSM
from .pgd import PGD

#: Name -> attack class.
ATTACKS: dict[str, type[Attack]] = {"fgsm": FGSM, "pgd": PGD}


def attack_options(name: str) -> list[str]:
    """The keyword arguments attack ``name`` takes besides ``eps`` (e.g. ``["random_start", "seed", ...]``)."""
    cls = _lookup(name)
    params = inspect.signature(cls.__init__).parameters
    return sorted(p for p in params if p not in ("self", "model", "eps"))


def make_attack(name: str, model: nn.Module, *, eps: float, **kw: Any) -> Attack:
    """The attack ``name`` (see :data:`ATTACKS`) on ``model`` with budget ``eps`` and options ``kw``.

    Raises:
        UnknownNameError: an unknown attack name (the message lists the choices).
        ConfigError: an option the attack does not take, or an invalid value.
    """
    allowed = attack_options(name)
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ConfigError(f"attack {name!r} does not take {', '.join(unknown)}; "
                          f"its options: eps{''.join(', ' + a for a in allowed)}")
    return _lookup(name)(model, eps=eps, **kw)


def _lookup(name: str) -> type[Attack]:
    key = name.lower() if isinstance(name, str) else name
    if key not in ATTACKS:
        raise UnknownNameError("attack", str(name), ATTACKS)
    return ATTACKS[key]
