"""The safetensors container: our writer is deterministic and readable by the library; crafted headers are refused."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from nnforensics.errors import CorruptFileError
from nnforensics.io import load_state_dict, read_meta, save_model
from nnforensics.models import load_model
from nnforensics.io.safetensors_file import MAX_HEADER_BYTES, read_header, write_safetensors
from nnforensics.models.factory import create_model


def _mixed_tensors() -> dict[str, torch.Tensor]:
    """Every common dtype, odd sizes (alignment), a scalar, an empty tensor and a non-contiguous view."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=gen)
    return {
        "z.f32": torch.randn(3, 4, generator=gen),
        "a.f16": torch.randn(7, generator=gen).half(),
        "b.bf16": torch.randn(3, generator=gen).bfloat16(),
        "c.i64": torch.arange(5),
        "d.u8": torch.arange(3, dtype=torch.uint8),
        "e.bool": torch.tensor([True, False, True]),
        "f.f64": torch.randn(2, 2, generator=gen, dtype=torch.float64),
        "g.scalar": torch.tensor(2.5),
        "h.empty": torch.zeros(0, 4),
        "i.transposed": base.t(),
    }


def test_written_files_read_back_with_the_safetensors_library(tmp_path):
    tensors, metadata = _mixed_tensors(), {"nnforensics": '{"arch": "x"}', "format": "pt"}
    path = tmp_path / "m.safetensors"
    write_safetensors(path, tensors, metadata)
    again = load_file(str(path))
    assert set(again) == set(tensors)
    for name, tensor in tensors.items():
        assert again[name].dtype == tensor.dtype and torch.equal(again[name], tensor), name
    with safe_open(str(path), "pt") as handle:
        assert handle.metadata() == metadata
    # the data starts 8-byte aligned and every tensor sits on a multiple of its item size
    data = path.read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    assert (8 + length) % 8 == 0
    header = json.loads(data[8:8 + length])
    for name, entry in header.items():
        if name != "__metadata__":
            assert entry["data_offsets"][0] % tensors[name].dtype.itemsize == 0, name


def test_same_tensors_and_metadata_give_the_same_bytes(tmp_path):
    """Whatever the insertion order; the library's own writer orders metadata at random."""
    tensors = _mixed_tensors()
    metadata = {"nnforensics": "{}", "format": "pt", "other": "x"}
    paths = []
    for i in range(12):
        order = list(tensors)[::-1] if i % 2 else list(tensors)
        meta_order = dict(reversed(list(metadata.items()))) if i % 3 else metadata
        paths.append(tmp_path / f"m{i}.safetensors")
        write_safetensors(paths[-1], {k: tensors[k] for k in order}, meta_order)
    assert len({p.read_bytes() for p in paths}) == 1


def test_save_model_is_byte_identical_for_the_same_model(tmp_path):
    """Fails with safetensors' save_file, which writes the two metadata keys in a random order."""
    created = create_model("lenet", {"width": 0.25}, seed=4)
    outputs = [save_model(created.model, tmp_path / f"m{i}.safetensors", created.meta) for i in range(12)]
    assert len({p.read_bytes() for p in outputs}) == 1
    loaded = load_model(outputs[0])
    assert loaded.meta == created.meta


def _craft(path: Path, header_text: str, data: bytes) -> Path:
    raw = header_text.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _entry(begin: int, end: int, shape: list[int], dtype: str = "F32") -> str:
    return json.dumps({"dtype": dtype, "shape": shape, "data_offsets": [begin, end]})


def test_duplicate_tensor_names_are_refused(tmp_path, tiny_model_file):
    """A header naming a tensor twice: JSON parsers keep the last one silently; we refuse the file."""
    header = '{"w": %s, "w": %s}' % (_entry(0, 8, [2]), _entry(8, 16, [2]))
    path = _craft(tmp_path / "dup.safetensors", header, bytes(16))
    for reader in (load_state_dict, read_meta, lambda p: load_model(p, arch="lenet")):
        with pytest.raises(CorruptFileError, match=r"'w' appears twice in its header") as info:
            reader(path)
        assert "dup.safetensors" in str(info.value) and "\n" not in str(info.value)


def test_duplicate_metadata_keys_are_refused(tmp_path):
    header = '{"__metadata__": {"nnforensics": "{}", "nnforensics": "{\\"arch\\": \\"lenet\\"}"}, "w": %s}' % (
        _entry(0, 8, [2]))
    path = _craft(tmp_path / "dupmeta.safetensors", header, bytes(8))
    with pytest.raises(CorruptFileError, match=r"'nnforensics' appears twice"):
        read_meta(path)


@pytest.mark.parametrize(("entries", "data_len", "match"), [
    ({"a": (0, 8, [2]), "b": (4, 12, [2])}, 12, "overlaps another tensor"),
    ({"a": (0, 8, [2]), "b": (12, 20, [2])}, 20, "leaves a gap"),
    ({"a": (0, 8, [2])}, 4, "describes 8 bytes of data, the file holds 4"),
    ({"a": (0, 8, [3])}, 8, r"does not fit its 8 bytes"),
    ({"a": (0, 8, [-2])}, 8, "invalid shape"),
    ({"a": (0, 0, [0, 2**70])}, 0, "invalid shape"),
    ({"a": (8, 0, [0])}, 8, "invalid data_offsets"),
])
def test_inconsistent_offsets_are_refused(tmp_path, entries, data_len, match):
    header = "{" + ", ".join(f'"{k}": {_entry(*v)}' for k, v in entries.items()) + "}"
    path = _craft(tmp_path / "bad.safetensors", header, bytes(data_len))
    with pytest.raises(CorruptFileError, match=match):
        load_state_dict(path)


@pytest.mark.parametrize(("header", "match"), [
    ('{"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 0]}}', "NaN, which JSON does not allow"),
    ('{"a": {"dtype": "X9", "shape": [1], "data_offsets": [0, 4]}}', "unsupported dtype"),
    ('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}}', "needs exactly dtype"),
    ('{"__metadata__": {"k": 3}}', "mapping of strings to strings"),
    ("[" * 5000 + "]" * 5000, "not valid JSON|does not start"),
])
def test_malformed_headers_are_refused(tmp_path, header, match):
    path = _craft(tmp_path / "bad.safetensors", header, bytes(4))
    with pytest.raises(CorruptFileError, match=match):
        read_header(path)


def test_header_length_is_bounded_before_reading(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(CorruptFileError, match=f"outside 1..{MAX_HEADER_BYTES}"):
        load_state_dict(path)
    path.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(CorruptFileError, match="runs past the end of the file"):
        load_state_dict(path)


def test_files_of_the_library_still_load(tmp_path, tiny_model_file):
    """Headers written by safetensors itself (any key order, padding) pass the stricter reader."""
    tensors = _mixed_tensors()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp_path / "lib.safetensors"), metadata={"a": "b"})
    again, meta = load_state_dict(tmp_path / "lib.safetensors")
    assert meta is None and all(torch.equal(again[k], v) for k, v in tensors.items())
