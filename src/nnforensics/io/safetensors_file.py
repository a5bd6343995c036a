"""The safetensors container, with its header parsed and written by nnforensics itself.

Layout (the safetensors specification): an 8-byte little-endian header length ``N``,
``N`` bytes of JSON, then the data buffer. The JSON maps every tensor name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the buffer) and may
hold ``"__metadata__"``: ``{str: str}``.

* Reading: the header is parsed here, bounded and strict (a length that fits the file,
  no key named twice, offsets that tile the buffer exactly), so that shapes can be
  compared with an architecture before any tensor is read, and a crafted header is a
  clear :class:`~nnforensics.errors.CorruptFileError`. The tensors themselves are then
  read by the safetensors library.
* Writing: compact JSON with sorted keys, tensors ordered by (item size, name), so the
  same tensors and metadata always give the same bytes (the library's writer keeps the
  metadata in a hash map whose order changes from run to run).
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, CorruptFileError
from .jsonfile import NonFiniteNumber, finite_float, refuse_constant

#: Largest header accepted: ~100 bytes per tensor, so room for >100k tensors and their metadata,
#: while a crafted header cannot make the JSON parser build gigabytes of Python objects.
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_DIMS = 32
MAX_DIM_SIZE = 2**48  # a zero-sized tensor may otherwise declare sizes that overflow int64
METADATA_KEY = "__metadata__"
ALIGNMENT = 8  # the data buffer starts on an 8-byte boundary (header padded with spaces)
NOT_READABLE = "is not a readable safetensors file (truncated or corrupt?)"

_OPTIONAL = {"F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "U16": "uint16", "U32": "uint32", "U64": "uint64"}
#: safetensors dtype names -> torch dtypes (those of this torch build).
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "C64": torch.complex64,
    **{k: getattr(torch, v) for k, v in _OPTIONAL.items() if hasattr(torch, v)},
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the header: dtype, shape and ``[begin, end)`` in the data buffer."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Header:
    """A validated safetensors header."""

    entries: dict[str, TensorEntry]
    metadata: dict[str, str]

    def skeleton(self) -> dict[str, torch.Tensor]:
        """Every tensor as a data-less ``meta`` tensor of the right shape and dtype."""
        return {name: torch.empty(e.shape, dtype=e.dtype, device="meta") for name, e in self.entries.items()}


# ---------------------------------------------------------------- reading

class _Bad(Exception):
    """A reason a header is refused (turned into one CorruptFileError by :func:`read_header`)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` refusing a key given twice (JSON parsers would keep the last one)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Bad(f"{key!r} appears twice in its header (each name must appear once)")
        out[key] = value
    return out


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_entry(name: str, raw: Any) -> TensorEntry:
    if not isinstance(raw, dict) or set(raw) != {"dtype", "shape", "data_offsets"}:
        raise _Bad(f"tensor {name!r} needs exactly dtype, shape and data_offsets in its header")
    dtype, shape, offsets = raw["dtype"], raw["shape"], raw["data_offsets"]
    if dtype not in DTYPES:
        raise _Bad(f"tensor {name!r} has an unsupported dtype {str(dtype)[:20]!r}")
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(map(_count, shape))
            or any(size > MAX_DIM_SIZE for size in shape)):
        raise _Bad(f"tensor {name!r} has an invalid shape {str(shape)[:60]}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_count, offsets)) and offsets[0] <= offsets[1]):
        raise _Bad(f"tensor {name!r} has invalid data_offsets {str(offsets)[:60]}")
    entry = TensorEntry(DTYPES[dtype], tuple(shape), offsets[0], offsets[1])
    numel = 1
    for size in entry.shape:
        numel *= size
    if numel * entry.dtype.itemsize != entry.end - entry.begin:
        raise _Bad(f"tensor {name!r} of shape {entry.shape} ({dtype}) does not fit its "
                   f"{entry.end - entry.begin} bytes of data")
    return entry


def _check_tiling(entries: dict[str, TensorEntry], data_bytes: int) -> None:
    """The tensors' byte ranges must follow each other without gap or overlap and fill the buffer."""
    position = 0
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin != position:
            kind = "overlaps another tensor" if entry.begin < position else "leaves a gap before it"
            raise _Bad(f"tensor {name!r} {kind} in the data buffer")
        position = entry.end
    if position != data_bytes:
        raise _Bad(f"the header describes {position} bytes of data, the file holds {data_bytes}")


def _parse_header(text: bytes, data_bytes: int) -> Header:
    try:
        raw = json.loads(text.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=refuse_constant,
                         parse_float=finite_float)
    except NonFiniteNumber as err:
        raise _Bad(f"its header holds a {err}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise _Bad(f"its header is not valid JSON ({type(err).__name__})") from None
    if not isinstance(raw, dict):
        raise _Bad("its header is not a JSON object")
    metadata = raw.pop(METADATA_KEY, None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _Bad("its __metadata__ is not a mapping of strings to strings")
    entries = {name: _parse_entry(name, value) for name, value in raw.items()}
    _check_tiling(entries, data_bytes)
    return Header(entries, dict(metadata))


def _read_raw_header(handle: Any, size: int) -> tuple[bytes, int]:
    """``(header bytes, data buffer size)`` from an open file of ``size`` bytes."""
    prefix = handle.read(8)
    if len(prefix) < 8:
        raise _Bad("it is shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", prefix)
    if length == 0 or length > MAX_HEADER_BYTES:
        raise _Bad(f"its header length {length} is outside 1..{MAX_HEADER_BYTES} bytes")
    if 8 + length > size:
        raise _Bad(f"its header length {length} runs past the end of the file ({size} bytes)")
    text = handle.read(length)
    if not text.startswith(b"{"):
        raise _Bad("its header does not start with '{'")
    return text, size - 8 - length


def read_header(path: str | os.PathLike) -> Header:
    """Parse and validate the header of a safetensors file, reading no tensor data.

    Raises :class:`CorruptFileError` (one line naming the file and the problem) for a
    truncated file, a header that is too long or not JSON, a key given twice, an
    unknown dtype, or byte ranges that overlap, leave gaps or leave the file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            text, data_bytes = _read_raw_header(handle, os.fstat(handle.fileno()).st_size)
        return _parse_header(text, data_bytes)
    except _Bad as err:
        raise CorruptFileError(f"{str(path)!r} {NOT_READABLE}: {err}") from None


def read_tensors(path: str | os.PathLike, header: Header) -> dict[str, torch.Tensor]:
    """The tensors of a file whose header :func:`read_header` accepted, in header order."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {name: handle.get_tensor(name) for name in header.entries}
    except Exception as err:  # the file changed since its header was read, or a library limit
        text = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise CorruptFileError(f"{str(path)!r} {NOT_READABLE}: {text}") from None


# ---------------------------------------------------------------- writing

def _layout(tensors: Mapping[str, torch.Tensor]) -> tuple[list[str], dict[str, Any]]:
    """Names in data order (largest items first, then by name: every tensor stays aligned) and the header."""
    for name, tensor in tensors.items():
        if tensor.dtype not in DTYPE_NAMES:
            raise ConfigError(f"cannot write tensor {name!r}: dtype {tensor.dtype} has no safetensors name")
    order = sorted(tensors, key=lambda k: (-tensors[k].dtype.itemsize, k))
    header: dict[str, Any] = {}
    position = 0
    for name in order:
        tensor = tensors[name]
        size = tensor.numel() * tensor.dtype.itemsize
        header[name] = {"dtype": DTYPE_NAMES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [position, position + size]}
        position += size
    return order, header


def encode_header(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None) -> tuple[list[str], bytes]:
    """``(names in data order, length prefix + JSON header padded to 8 bytes)``; deterministic."""
    order, header = _layout(tensors)
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ConfigError("safetensors metadata must map strings to strings")
        header[METADATA_KEY] = dict(metadata)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % ALIGNMENT)
    return order, struct.pack("<Q", len(text)) + text


def _raw_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes in little-endian order, without a copy when it is contiguous on the CPU."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def write_safetensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
                      metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` and ``metadata`` as a safetensors file (not atomically: see ``atomic_path``).

    The same tensors and metadata always give the same bytes. The safetensors library
    reads the file back (``safe_open``, ``safetensors.torch.load_file``).
    """
    if sys.byteorder != "little":
        raise ConfigError("writing safetensors files needs a little-endian machine")
    order, head = encode_header(tensors, metadata)
    with open(path, "wb") as handle:
        handle.write(head)
        for name in order:
            if tensors[name].numel():
                handle.write(_raw_bytes(tensors[name]))
