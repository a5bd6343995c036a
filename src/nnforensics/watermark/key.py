"""The secret of a Uchida et al. (2017) watermark: which layer, which bits, which projection.

A key is a small JSON file the owner keeps apart from the model. It holds the layer
name and the shape of its weight, the T bits, and the seed from which the secret
projection matrix X (T, len(w)) is regenerated, together with the SHA-256 of X: a
key whose matrix does not regenerate bit for bit (an edited seed, another random
stream) is refused instead of silently extracting with the wrong X.

X is defined as ``numpy.random.default_rng(derive_seed("watermark-key", seed))
.standard_normal((T, len(w)))`` (PCG64, float64) rounded to float32. The rounding makes
the definition insensitive to 1-ulp differences of the platform's libm in numpy's
ziggurat tail; the checksum guards the rest.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..errors import ConfigError, CorruptFileError, UnknownNameError
from ..io.jsonfile import read_json
from ..models.layers import weight_layers
from ..perturbation import output_axis
from ..utils.atomic import atomic_write_text
from ..utils.seeding import numpy_rng

KEY_FORMAT = "nnforensics-watermark/1"
SCHEME = "uchida2017"
GENERATOR = "numpy-pcg64-standard-normal-float32/sha256-derived-seed"
DEFAULT_BITS = 64
DEFAULT_STRENGTH = 0.1
#: Largest key matrix a key file may ask for (T * len(w) values), so a forged file cannot exhaust memory.
MAX_MATRIX = 1 << 25
MESSAGE_KINDS = ("random", "text", "hex")


# ----------------------------------------------------------------- messages

def message_bits(message: str) -> list[int]:
    """Bits of a user message, most significant bit first.

    ``0x...`` is read as hexadecimal (4 bits per digit); anything else is text, encoded
    as UTF-8 (8 bits per byte).
    """
    if not isinstance(message, str) or message == "":
        raise ConfigError("the watermark message is empty; give some text or 0x-prefixed hex digits")
    if message[:2].lower() == "0x":
        digits = message[2:]
        if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise ConfigError(f"watermark message {message!r} starts with 0x but is not hexadecimal "
                              f"(0-9, a-f after the 0x)")
        return [int(b) for c in digits for b in format(int(c, 16), "04b")]
    return [int(b) for byte in message.encode("utf-8") for b in format(byte, "08b")]


def decode_message(bits: list[int] | np.ndarray, kind: str) -> str | None:
    """The message that ``bits`` (MSB first) spell: text (UTF-8, undecodable bytes as U+FFFD) or hex."""
    bits = [int(b) for b in bits]
    if kind == "hex":
        bits = bits[: len(bits) - len(bits) % 4]
        return "0x" + "".join(format(int("".join(map(str, bits[i:i + 4])), 2), "x") for i in range(0, len(bits), 4))
    if kind == "text":
        bits = bits[: len(bits) - len(bits) % 8]
        data = bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))
        return data.decode("utf-8", errors="replace")
    return None


# ----------------------------------------------------------------- the key

def _weight_length(shape: tuple[int, ...], filter_axis: int) -> int:
    """len(w): the weight's size once the output-filter axis is averaged out."""
    return math.prod(s for axis, s in enumerate(shape) if axis != filter_axis)


def key_matrix(seed: int, n_bits: int, length: int) -> torch.Tensor:
    """The secret projection X (n_bits, length), float32, regenerated from ``seed`` (see module doc)."""
    x = numpy_rng("watermark-key", seed).standard_normal((n_bits, length)).astype("<f4")
    return torch.from_numpy(x)


def matrix_digest(matrix: torch.Tensor) -> str:
    """SHA-256 of X as little-endian float32 bytes, row-major."""
    return hashlib.sha256(matrix.numpy().astype("<f4").tobytes()).hexdigest()


@dataclass(frozen=True)
class WatermarkKey:
    """Everything needed to embed and extract one watermark (a secret).

    Attributes:
        layer: name of the watermarked Conv/Linear module.
        weight_shape: shape of its weight, e.g. (N, C, k, k) or (out, in).
        filter_axis: axis of the weight indexing output filters (0; 1 for transposed convs),
            averaged out to give w of length :attr:`length` (C*k*k for a conv, ``in`` for a Linear).
        bits: the T embedded bits (0/1).
        seed: seed of the projection matrix X (T, len(w)).
        strength: lambda, the weight of the regulariser (recorded for reference).
        message_kind: ``random`` (bits drawn from the seed), ``text`` (UTF-8) or ``hex``.
        message_length: bits of the user's message before padding/truncation to T (0 for random).
        digest: SHA-256 of X (checked when X is regenerated; computed when empty).
    """

    layer: str
    weight_shape: tuple[int, ...]
    filter_axis: int
    bits: tuple[int, ...]
    seed: int
    strength: float = DEFAULT_STRENGTH
    message_kind: str = "random"
    message_length: int = 0
    digest: str = field(default="", compare=False)

    @property
    def n_bits(self) -> int:
        """T, the number of embedded bits."""
        return len(self.bits)

    @property
    def length(self) -> int:
        """len(w), the number of averaged weights the bits are projected from."""
        return _weight_length(self.weight_shape, self.filter_axis)

    @cached_property
    def matrix(self) -> torch.Tensor:
        """X (T, len(w)) float32, regenerated once per key object and checked against :attr:`digest`."""
        x = key_matrix(self.seed, self.n_bits, self.length)
        if self.digest and matrix_digest(x) != self.digest:
            raise CorruptFileError(
                "the key matrix regenerated from the key's seed does not match the key's checksum: the key was "
                f"edited, or this numpy ({np.__version__}) draws another random stream than the one that wrote it")
        return x

    @property
    def target(self) -> torch.Tensor:
        """The bits as a float tensor (T,) for the loss."""
        return torch.tensor(self.bits, dtype=torch.float32)

    def message(self, bits: list[int] | np.ndarray | None = None) -> str | None:
        """The message ``bits`` (default: the embedded ones) spell, for text/hex keys."""
        bits = self.bits if bits is None else bits
        return decode_message(list(bits)[: min(self.message_length, self.n_bits)], self.message_kind)

    def describe(self) -> str:
        """One line: what is embedded where."""
        return (f"{self.n_bits} bits ({self.message_kind}) in layer {self.layer!r} "
                f"(weight {tuple(self.weight_shape)}, len(w) = {self.length})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": KEY_FORMAT,
            "scheme": SCHEME,
            "layer": self.layer,
            "weight_shape": list(self.weight_shape),
            "filter_axis": self.filter_axis,
            "bits": "".join(map(str, self.bits)),
            "strength": self.strength,
            "message": {"kind": self.message_kind, "length": self.message_length},
            "matrix": {"generator": GENERATOR, "seed": self.seed, "shape": [self.n_bits, self.length],
                       "sha256": self.digest or matrix_digest(self.matrix), "numpy": np.__version__},
        }


# ----------------------------------------------------------------- making a key

def watermark_layer(model: nn.Module, layer: str) -> nn.Module:
    """The Conv/Linear module ``layer`` of ``model`` (:class:`UnknownNameError` listing the valid ones)."""
    layers = dict(weight_layers(model))
    if layer not in layers:
        raise UnknownNameError("watermark layer", layer, layers)
    return layers[layer]


def fit_bits(bits: list[int], n_bits: int) -> tuple[list[int], str | None]:
    """``bits`` padded with zeros or truncated to ``n_bits``, and a note saying which (None if neither)."""
    if len(bits) == n_bits:
        return list(bits), None
    if len(bits) < n_bits:
        return list(bits) + [0] * (n_bits - len(bits)), (
            f"the message has {len(bits)} bits; padded with {n_bits - len(bits)} zero bits to the key's {n_bits}")
    return list(bits[:n_bits]), (f"the message has {len(bits)} bits; only its first {n_bits} are embedded "
                                 f"(use {len(bits)} bits to embed all of it)")


def check_bit_count(n_bits: object, length: int, layer: str) -> int:
    """T if it is an integer in 1..len(w), else :class:`ConfigError` saying why."""
    if not (isinstance(n_bits, int) and not isinstance(n_bits, bool) and n_bits >= 1):
        raise ConfigError(f"the number of watermark bits must be an integer >= 1, got {n_bits!r}")
    if n_bits > length:
        raise ConfigError(
            f"{n_bits} bits cannot be embedded in layer {layer!r}: its averaged weight vector w has only "
            f"{length} entries, and Uchida's scheme needs T <= len(w): only then are the T rows of X "
            f"linearly independent, so that every pattern of T bits (signs of X w) can be embedded; "
            f"use at most {length} bits or a larger layer")
    return n_bits


def make_key(
    model: Any,
    layer: str,
    n_bits: int = DEFAULT_BITS,
    *,
    message: str | None = None,
    strength: float = DEFAULT_STRENGTH,
    seed: int | None = None,
) -> tuple[WatermarkKey, str | None]:
    """A new key for ``layer`` of ``model`` (an ``nn.Module`` or loaded model).

    Args:
        n_bits: T, 1 <= T <= len(w).
        message: text (UTF-8) or ``0x``-prefixed hex, padded with zeros / truncated to T;
            None: T random bits drawn from ``seed``.
        strength: lambda of the regulariser (> 0).
        seed: the secret seed of X (and of random bits). None draws a fresh one from the
            operating system: give one only for reproducible experiments.

    Returns:
        ``(key, note)``; ``note`` says how the message was padded or truncated (else None).
    """
    from ..permutation import unwrap

    module, _ = unwrap(model)
    layer_module = watermark_layer(module, layer)
    shape = tuple(int(s) for s in layer_module.weight.shape)
    axis = output_axis(layer_module)
    n_bits = check_bit_count(n_bits, _weight_length(shape, axis), layer)
    if not (isinstance(strength, (int, float)) and not isinstance(strength, bool)
            and math.isfinite(strength) and strength > 0):
        raise ConfigError(f"the watermark strength (lambda) must be a finite number > 0, got {strength!r}")
    if seed is None:
        seed = secrets.randbits(63)
    elif not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        raise ConfigError(f"the key seed must be an integer >= 0, got {seed!r}")
    note = None
    if message is None:
        bits, kind, length = numpy_rng("watermark-bits", seed).integers(0, 2, n_bits).tolist(), "random", 0
    else:
        raw = message_bits(message)
        bits, note = fit_bits(raw, n_bits)
        kind, length = ("hex" if message[:2].lower() == "0x" else "text"), len(raw)
    digest = matrix_digest(key_matrix(seed, n_bits, _weight_length(shape, axis)))
    return WatermarkKey(layer, shape, axis, tuple(int(b) for b in bits), int(seed), float(strength), kind, length,
                        digest), note


# ----------------------------------------------------------------- files

def save_key(path: str | os.PathLike, key: WatermarkKey) -> Path:
    """Write ``key`` as JSON, atomically (the file is a secret: keep it apart from the model)."""
    path = Path(path)
    atomic_write_text(path, json.dumps(key.to_dict(), indent=1) + "\n")
    return path


def _is_int(v: Any, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def key_from_dict(raw: Any, source: str = "key") -> WatermarkKey:
    """Parse and check a key read from JSON; anything malformed is a :class:`CorruptFileError`."""
    def bad(what: str) -> CorruptFileError:
        return CorruptFileError(f"{source}: {what}")

    if not isinstance(raw, dict) or "format" not in raw:
        raise bad(f"not an nnforensics watermark key (no format tag; expected {KEY_FORMAT!r})")
    fmt = raw["format"]
    if fmt != KEY_FORMAT:
        hint = ("written by another version of nnforensics" if isinstance(fmt, str)
                and fmt.startswith("nnforensics-watermark/") else "not a watermark key")
        raise bad(f"format tag {fmt!r} is not {KEY_FORMAT!r} ({hint})")
    if raw.get("scheme", SCHEME) != SCHEME:
        raise bad(f"unknown watermark scheme {raw.get('scheme')!r} (this nnforensics reads {SCHEME!r})")
    layer, shape, axis, bits = raw.get("layer"), raw.get("weight_shape"), raw.get("filter_axis"), raw.get("bits")
    matrix, message, strength = raw.get("matrix"), raw.get("message"), raw.get("strength", DEFAULT_STRENGTH)
    if not (isinstance(layer, str) and layer):
        raise bad("'layer' must be a non-empty layer name")
    if not (isinstance(shape, list) and len(shape) >= 2 and all(_is_int(s, 1) for s in shape)):
        raise bad(f"'weight_shape' must be a list of at least 2 positive integers, got {shape!r:.80}")
    if not (_is_int(axis) and axis < len(shape)):
        raise bad(f"'filter_axis' must be an axis of the weight (0..{len(shape) - 1}), got {axis!r}")
    if not (isinstance(bits, str) and bits and set(bits) <= {"0", "1"}):
        raise bad("'bits' must be a non-empty string of 0s and 1s")
    if not (isinstance(strength, (int, float)) and not isinstance(strength, bool)
            and math.isfinite(strength) and strength > 0):
        raise bad(f"'strength' must be a finite number > 0, got {strength!r}")
    if not (isinstance(message, dict) and message.get("kind") in MESSAGE_KINDS and _is_int(message.get("length"))):
        raise bad(f"'message' must be {{'kind': one of {', '.join(MESSAGE_KINDS)}, 'length': bits}}")
    if not isinstance(matrix, dict):
        raise bad("'matrix' (the seed and checksum of the key matrix) is missing")
    if matrix.get("generator") != GENERATOR:
        raise bad(f"unknown key-matrix generator {matrix.get('generator')!r} (this nnforensics uses {GENERATOR!r})")
    seed, digest = matrix.get("seed"), matrix.get("sha256")
    if not _is_int(seed):
        raise bad(f"the key-matrix seed must be an integer >= 0, got {seed!r:.80}")
    if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise bad("the key-matrix checksum 'sha256' must be 64 lowercase hex digits")
    length = _weight_length(tuple(shape), axis)
    if matrix.get("shape") not in (None, [len(bits), length]):
        raise bad(f"the key-matrix shape {matrix.get('shape')!r} does not match {len(bits)} bits x len(w) = {length}")
    if len(bits) > length:
        raise bad(f"{len(bits)} bits for a layer whose w has {length} entries (Uchida's scheme needs T <= len(w))")
    if len(bits) * length > MAX_MATRIX:
        raise bad(f"a key matrix of {len(bits)} x {length} values is implausibly large")
    return WatermarkKey(layer, tuple(shape), axis, tuple(int(b) for b in bits), seed, float(strength),
                        message["kind"], message["length"], digest)


def load_key(path: str | os.PathLike) -> WatermarkKey:
    """Read a key written by :func:`save_key` (plain JSON: nothing in it is ever evaluated).

    The key matrix is regenerated here and checked against the file's checksum, so a
    key that would extract with another X is refused at once.
    """
    path = Path(path)
    raw = read_json(path, "key file")  # bounded and strict: a crafted file is one clear error
    key = key_from_dict(raw, f"key file {str(path)!r}")
    try:
        _ = key.matrix  # regenerated and checked now, not at the first extraction
    except CorruptFileError as err:
        writer = raw["matrix"].get("numpy")
        raise CorruptFileError(f"key file {str(path)!r}: {err}"
                               + (f" (numpy {writer})" if isinstance(writer, str) else "")) from None
    return key
