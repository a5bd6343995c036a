"""Reading JSON that a user (or an attacker) handed us: bounded, strict, one clear error.

Every JSON file nnforensics reads from outside (watermark keys, permutation truth
files, a sweep's ``config.json``) goes through :func:`read_json`, so that a crafted
file is a :class:`~nnforensics.errors.CorruptFileError` naming the file, never a
``RecursionError`` or a ``MemoryError`` deep inside a parser:

* at most :data:`MAX_JSON_BYTES` bytes, UTF-8 text;
* at most :data:`MAX_DEPTH` levels of nested lists/objects (``[[[[...]]]]`` a hundred
  thousand deep crashes Python's recursive parser);
* no ``NaN`` / ``Infinity`` (not JSON; Python's parser accepts them) and no number too
  large for a float (``1e999`` would become ``inf``), unless asked.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, CorruptFileError

#: Largest JSON file read (our keys, truth files and configs are kilobytes).
MAX_JSON_BYTES = 64 * 1024 * 1024
#: Deepest nesting accepted (ours never exceeds 4).
MAX_DEPTH = 64


class NonFiniteNumber(ValueError):
    """A JSON number that is not finite: ``NaN``/``Infinity`` literals, or ``1e999`` (inf as a float)."""


def refuse_constant(name: str) -> Any:
    """``parse_constant`` hook: ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON."""
    raise NonFiniteNumber(f"non-finite number {name}, which JSON does not allow")


def finite_float(text: str) -> float:
    """``parse_float`` hook: a number too large for a float (``1e999``) would silently become inf."""
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteNumber(f"non-finite number {text[:40]} (too large for a float)")
    return value


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0, ``[1]`` is 1), computed without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def parse_json(text: str, source: str, *, allow_nan: bool = False, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads(text)`` with the checks of this module; errors name ``source`` (e.g. "key file 'k.json'").

    Raises:
        CorruptFileError: not JSON, nested deeper than ``max_depth``, or NaN/Infinity
            when not ``allow_nan``.
    """
    try:
        strict = {} if allow_nan else {"parse_constant": refuse_constant, "parse_float": finite_float}
        value = json.loads(text, **strict)
    except RecursionError:  # the C parser recurses once per level
        raise CorruptFileError(f"{source} is nested too deeply (more than {max_depth} levels of lists or "
                               f"objects): not a file nnforensics wrote") from None
    except ValueError as err:  # JSONDecodeError, the NaN refusal above, Python's integer-size limit
        reason = str(err).splitlines()[0]
        if "integer string conversion" in reason:
            reason = "it holds an integer with thousands of digits"
        raise CorruptFileError(f"{source} is not valid JSON (truncated or corrupt?): {reason}") from None
    if json_depth(value) > max_depth:
        raise CorruptFileError(f"{source} is nested too deeply (more than {max_depth} levels of lists or "
                               f"objects): not a file nnforensics wrote")
    return value


def read_json(path: str | os.PathLike, what: str = "JSON file", *, allow_nan: bool = False,
              max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Read and parse a JSON file safely.

    Args:
        path: the file.
        what: what it is, for messages ("key file", "truth file"...).
        allow_nan: accept ``NaN`` / ``Infinity`` literals.
        max_bytes, max_depth: bounds (see the module docstring).

    Raises:
        ConfigError: the file does not exist or is not a regular file.
        CorruptFileError: empty, too large, not UTF-8 text, not JSON, too deeply nested.
    """
    path = Path(path)
    source = f"{what} {str(path)!r}"
    if not path.exists():
        raise ConfigError(f"{what} not found: {str(path)!r}")
    if not path.is_file():
        raise ConfigError(f"expected a {what}, got a directory or special file: {str(path)!r}")
    size = path.stat().st_size
    if size > max_bytes:
        raise CorruptFileError(f"{source} is {size:,} bytes; more than the {max_bytes:,} a {what} may have")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptFileError(f"{source} is not text (expected JSON)") from None
    if not text.strip():
        raise CorruptFileError(f"{source} is empty")
    return parse_json(text, source, allow_nan=allow_nan, max_depth=max_depth)
