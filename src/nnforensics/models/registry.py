"""A registry of model constructors (timm-style) and adapters for users' own models.

Every built-in constructor takes ``num_classes``, ``in_channels``, ``width`` (a
channel multiplier, so tests can use narrow versions) and ``image_size`` (an int or an
``(H, W)`` pair, see :mod:`.sizes`): layer sizes that depend on the input follow it, and
an input too small for an architecture is refused when it is built.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_parameter_registration_hook,
)

from ..errors import ConfigError, NNFError, ShapeMismatchError, UnknownNameError


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture."""

    name: str
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    family: str
    description: str = ""
    torchvision: str | None = None  # torchvision constructor with identical names/shapes
    defaults: dict[str, Any] = field(default_factory=dict)

    def build(self, **kwargs: Any) -> nn.Module:
        args = {**self.defaults, **kwargs}
        accepted = inspect.signature(self.factory).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
            unknown = sorted(set(args) - set(accepted))
            if unknown:
                raise ConfigError(
                    f"architecture {self.name!r} does not take argument(s) {', '.join(unknown)}; "
                    f"it takes: {', '.join(k for k in accepted if k not in self.defaults)}"
                )
        try:
            return self.factory(**args)
        except NNFError:
            raise
        except Exception as err:  # arguments from a file or the command line: any failure is theirs
            raise ConfigError(f"cannot build {self.name!r} with {_short(args)}: {_reason(err)}") from None


def _reason(err: BaseException) -> str:
    """An exception's first line; prefixed with its type unless it is a constructor's own ValueError/TypeError."""
    lines = str(err).strip().splitlines()
    text = lines[0][:300] if lines else ""
    return text if isinstance(err, (ValueError, TypeError)) and text else f"{type(err).__name__}: {text}".rstrip(": ")


def _short(args: dict[str, Any], most: int = 200) -> str:
    """``repr(args)``, cut to ``most`` characters (arguments read from a file can be long lists)."""
    text = repr(args)
    return text if len(text) <= most else text[:most] + " ...}"


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    family: str,
    description: str = "",
    torchvision: str | None = None,
    **defaults: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``factory`` under ``name`` (``defaults`` fix variant arguments)."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name, factory, tuple(input_shape), family, description, torchvision, defaults)
        return factory

    return wrap


def _ensure_builtins() -> None:
    from . import zoo  # noqa: F401  (registers the built-in architectures)


def list_models() -> list[ModelSpec]:
    """All registered architectures, sorted by name."""
    _ensure_builtins()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_model_spec(name: str) -> ModelSpec:
    _ensure_builtins()
    if name not in _REGISTRY:
        raise UnknownNameError("architecture", name, _REGISTRY)
    return _REGISTRY[name]


def is_user_arch(arch: str) -> bool:
    """True for ``path/to/file.py:Class`` or ``package.module:factory`` specs."""
    return ":" in arch


#: User architecture files already imported in this process: (resolved path, mtime, size) -> module.
_USER_MODULES: dict[tuple[str, int, int], types.ModuleType] = {}


def _load_user_factory(arch: str) -> Callable[..., nn.Module]:
    """Import a user's own architecture given on the command line (never from a model file)."""
    target, _, attr = arch.rpartition(":")
    if not target or not attr:
        raise ConfigError(f"user architecture {arch!r} must look like path/to/file.py:ClassName or package.module:factory")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _user_file_module(target)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as err:
            raise ConfigError(f"cannot import module {target!r}: {err}") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ConfigError(f"{target!r} has no class or function named {attr!r}")
    return factory


def _user_file_module(target: str) -> types.ModuleType:
    """The module of a ``file.py``, executed once per process (again only if the file changes)."""
    path = Path(target)
    if not path.is_file():
        raise ConfigError(f"user architecture file {target!r} does not exist")
    resolved = path.resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    if key not in _USER_MODULES:
        _USER_MODULES[key] = _exec_user_file(path, resolved)
    return _USER_MODULES[key]


def _exec_user_file(path: Path, resolved: Path) -> types.ModuleType:
    mod_name = f"nnf_user_arch_{abs(hash(str(resolved)))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {str(path)!r} as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's own code failed to import
        sys.modules.pop(mod_name, None)
        raise ConfigError(f"importing {str(path)!r} failed: {type(err).__name__}: {err}") from None
    return module


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    """Build a registered architecture or a user's ``file.py:Class`` / ``pkg.mod:factory``.

    For user architectures, keyword arguments the constructor does not accept
    (e.g. ``width``) are dropped rather than failing.
    """
    if not is_user_arch(arch):
        return get_model_spec(arch).build(**kwargs)
    return _build_user(arch, _load_user_factory(arch), kwargs)


def _build_user(arch: str, factory: Callable[..., nn.Module], kwargs: dict[str, Any]) -> nn.Module:
    """Call a user's factory with the arguments it accepts; any failure is a :class:`ConfigError`."""
    try:
        params = inspect.signature(factory).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            kwargs = {k: v for k, v in kwargs.items() if k in params}
    except (TypeError, ValueError):
        pass
    try:
        model = factory(**kwargs)
    except Exception as err:
        raise ConfigError(f"building user architecture {arch!r} with {_short(kwargs)} failed: "
                          f"{type(err).__name__}: {err}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"user architecture {arch!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


class _TooManyTensors(Exception):
    """Raised inside a constructor that registers more tensors than allowed."""


class _Budget:
    """A registration hook counting parameters and buffers, raising past ``limit``."""

    def __init__(self, limit: int):
        self.limit, self.count, self.exceeded = limit, 0, False

    def __call__(self, module: nn.Module, name: str, value: Any) -> None:
        self.count += 1
        if self.count > self.limit:
            self.exceeded = True
            raise _TooManyTensors


@contextmanager
def _counting(budget: _Budget) -> Iterator[None]:
    """Every module built in this block reports its parameter and buffer registrations to ``budget``."""
    handles = [register_module_parameter_registration_hook(budget), register_module_buffer_registration_hook(budget)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def build_on_meta(arch: str, kwargs: dict[str, Any], max_tensors: int | None = None) -> nn.Module:
    """Build ``arch`` on torch's ``meta`` device: every shape, no memory for any weight.

    Args:
        arch: as for :func:`build_model`.
        kwargs: constructor arguments.
        max_tensors: stop with :class:`ShapeMismatchError` once the constructor has
            registered more parameters and buffers than this (so arguments read from an
            untrusted file cannot make it build millions of layers).

    Global module-registration hooks count the tensors: meant for one model built at a time.
    """
    budget = _Budget(max_tensors if max_tensors is not None else sys.maxsize)
    # A user's module is imported outside the meta context: tensors it makes at import stay real.
    factory = _load_user_factory(arch) if is_user_arch(arch) else None
    try:
        with torch.device("meta"), _counting(budget):
            if factory is None:
                return get_model_spec(arch).build(**kwargs)
            return _build_user(arch, factory, kwargs)
    except Exception:
        if not budget.exceeded:
            raise
    raise ShapeMismatchError(f"weights do not match architecture {arch!r}: with {kwargs} it has more than "
                             f"{max_tensors} parameter and buffer tensors, far more than the file holds")


def accepts_argument(arch: str, name: str) -> bool:
    """Whether the constructor of ``arch`` takes keyword ``name``."""
    factory = get_model_spec(arch).factory if not is_user_arch(arch) else _load_user_factory(arch)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True, ``"[1,2]"`` -> [1, 2], else the string."""
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_arch_args(items: Iterable[str] | None) -> dict[str, Any]:
    """Parse repeated ``KEY=VALUE`` options."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out
