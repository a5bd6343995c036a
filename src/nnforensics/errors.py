"""Errors that reach the user as one readable line.

Every failure caused by the user's input (a name, a file, a shape, a setting) is an
:class:`NNFError`. The CLI prints its message and exits non-zero; anything else is
a bug and is reported as an internal error.
"""

from __future__ import annotations

from collections.abc import Iterable


class NNFError(Exception):
    """Base class: a problem with the user's input, explained in ``str(err)``."""

    exit_code = 1


class UnknownNameError(NNFError, KeyError):
    """A name (architecture, dataset, layer, group, method...) that does not exist."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        shown = ", ".join(self.valid[:60]) + (" ..." if len(self.valid) > 60 else "")
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {shown}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ShapeMismatchError(NNFError):
    """Tensors, models or data whose shapes or keys do not fit together."""


class CorruptFileError(NNFError):
    """A file that cannot be parsed: truncated, corrupt or of the wrong format."""


class UnsafeFileError(NNFError):
    """A file that would need code execution to load (e.g. a pickle with objects)."""


class InvalidWeightsError(NNFError):
    """Weights that cannot be trusted numerically (NaN, Inf)."""


class DataError(NNFError):
    """Datasets that are missing, empty or malformed."""


class ConfigError(NNFError):
    """Inconsistent or out-of-range settings."""


class UnsupportedModelError(NNFError):
    """A network whose computation graph the toolkit cannot analyse."""


class FileClobberError(NNFError):
    """An output path that would overwrite an input."""
