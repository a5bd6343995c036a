"""Model files: round trips, and every kind of bad file refused with a clear NNFError."""

from __future__ import annotations

import os
import pickle
import random
import stat
import struct
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from nnforensics.errors import (
    ConfigError,
    CorruptFileError,
    FileClobberError,
    InvalidWeightsError,
    NNFError,
    ShapeMismatchError,
    UnsafeFileError,
)
from nnforensics.io import ModelMeta, load_state_dict, read_meta, save_model
from nnforensics.models import load_model
from nnforensics.io.meta import META_KEY
from nnforensics.io.modelcheck import load_into
from nnforensics.io.modelfile import check_finite
from nnforensics.models.factory import create_model


def _outputs(model: nn.Module, seed: int = 0) -> torch.Tensor:
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return dict(handle.metadata())


def _rewrite(src: Path, dest: Path, meta_text: str | None = None, **changes: torch.Tensor) -> Path:
    """Copy a safetensors model with replaced tensors and/or metadata text."""
    tensors = {**load_file(str(src)), **changes}
    metadata = _metadata(src)
    if meta_text is not None:
        metadata[META_KEY] = meta_text
    save_file(tensors, str(dest), metadata=metadata)
    return dest


# ---------------------------------------------------------------- round trips

def test_safetensors_round_trip_is_bit_exact(tmp_path):
    created = create_model("lenet", {"width": 0.5}, seed=3)
    path = save_model(created.model, tmp_path / "m.safetensors", created.meta)
    loaded = load_model(path)
    assert loaded.meta == created.meta
    assert loaded.path == path and not loaded.model.training
    for key, value in created.model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key]), key
    assert torch.equal(_outputs(created.model), _outputs(loaded.model))


def test_same_seed_same_weights_other_seed_differs(tmp_path, make_model_file):
    a = load_model(make_model_file(tmp_path / "a.safetensors", seed=1)).model.state_dict()
    b = load_model(make_model_file(tmp_path / "b.safetensors", seed=1)).model.state_dict()
    c = load_model(make_model_file(tmp_path / "c.safetensors", seed=2)).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_state_dict_pt_with_arch_matches_safetensors(tiny_model_file, tiny_state_dict_file):
    original = load_model(tiny_model_file)
    imported = load_model(tiny_state_dict_file, arch="lenet", arch_args={"width": 0.5})
    assert torch.equal(_outputs(original.model), _outputs(imported.model))
    assert imported.meta.history[0]["op"] == "import"
    assert imported.meta.num_classes == 10  # inferred from the last layer
    assert imported.meta.input_shape == [1, 28, 28]


@pytest.mark.parametrize("wrap", ["state_dict", "model", "module_prefix"])
def test_wrapped_state_dicts_are_accepted(tmp_path, tiny_model_file, wrap):
    tensors = load_file(str(tiny_model_file))
    obj = {f"module.{k}": v for k, v in tensors.items()} if wrap == "module_prefix" else {wrap: tensors, "epoch": 3}
    torch.save(obj, tmp_path / "w.pth")
    loaded = load_model(tmp_path / "w.pth", arch="lenet", arch_args={"width": 0.5})
    assert torch.equal(_outputs(loaded.model), _outputs(load_model(tiny_model_file).model))


def test_arch_args_override_is_recorded(tmp_path, make_model_file):
    path = make_model_file(tmp_path / "m.safetensors", arch="mlp", arch_args={"width": 0.1, "num_classes": 10})
    loaded = load_model(path, arch="mlp", arch_args={"num_classes": 10})
    assert loaded.meta.arch_args["width"] == 0.1  # the file's arguments are kept
    assert read_meta(path).arch == "mlp"


def test_input_shape_override(tmp_path, tiny_model_file, tiny_state_dict_file):
    """A given input shape is recorded; for a built-in architecture it must be the one its arguments define."""
    assert load_model(tiny_model_file, input_shape=(1, 28, 28)).meta.input_shape == [1, 28, 28]
    with pytest.raises(ConfigError, match=r"input shape \(1, 32, 32\) does not fit .*takes inputs \(1, 28, 28\)"):
        load_model(tiny_model_file, input_shape=(1, 32, 32))
    with pytest.raises(ConfigError, match="image_size"):
        load_model(tiny_state_dict_file, arch="lenet", arch_args={"width": 0.5}, input_shape=(1, 32, 32))


def test_missing_batchnorm_counters_are_tolerated():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    tensors = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    load_into(model, tensors, "toy")  # exported state dicts often lack them


# ---------------------------------------------------------------- weights that do not fit

def test_mismatch_names_first_keys_and_shapes(tiny_model_file, tmp_path):
    tensors = load_file(str(tiny_model_file))
    tensors["fc3.weight"] = torch.zeros(5, 42)
    del tensors["fc3.bias"]
    tensors["extra.weight"] = torch.zeros(1)
    torch.save(tensors, tmp_path / "bad.pt")
    with pytest.raises(ShapeMismatchError) as info:
        load_model(tmp_path / "bad.pt", arch="lenet", arch_args={"width": 0.5, "num_classes": 10})
    message = str(info.value)
    assert "fc3.weight file (5, 42) vs model (10, 42)" in message
    assert "missing keys: fc3.bias" in message and "unexpected keys: extra.weight" in message
    assert "\n" not in message


def test_wrong_architecture_width(tiny_state_dict_file):
    with pytest.raises(ShapeMismatchError, match=r"conv1\.weight file \(3, 1, 5, 5\) vs model \(6, 1, 5, 5\)"):
        load_model(tiny_state_dict_file, arch="lenet")


def test_state_dict_without_arch_asks_for_one(tiny_state_dict_file):
    with pytest.raises(ConfigError, match="pass --arch"):
        load_model(tiny_state_dict_file)


def test_unknown_arch_lists_valid_ones(tiny_state_dict_file):
    with pytest.raises(NNFError, match="unknown architecture 'lenett'; valid architectures: .*lenet"):
        load_model(tiny_state_dict_file, arch="lenett")


# ---------------------------------------------------------------- corrupt, truncated, foreign files

def test_truncated_safetensors_at_every_size_is_corrupt(tiny_model_file, tmp_path):
    data = tiny_model_file.read_bytes()
    for size in [1, 7, 8, 9, 50, 200, len(data) // 2, len(data) - 1]:
        cut = tmp_path / f"cut{size}.safetensors"
        cut.write_bytes(data[:size])
        with pytest.raises(CorruptFileError, match="truncated or corrupt"):
            load_model(cut)


def test_truncated_pt_is_corrupt(tiny_state_dict_file, tmp_path):
    data = tiny_state_dict_file.read_bytes()
    for size in [2, 100, len(data) // 2, len(data) - 10]:
        cut = tmp_path / f"cut{size}.pt"
        cut.write_bytes(data[:size])
        with pytest.raises(CorruptFileError, match="truncated or corrupt"):
            load_model(cut, arch="lenet", arch_args={"width": 0.5})


def test_random_header_damage_never_escapes_as_internal_error(tiny_model_file, tmp_path):
    """Flip bytes in the safetensors header: always a clean NNFError, or still a loadable file."""
    data = bytearray(tiny_model_file.read_bytes())
    header_end = 8 + struct.unpack("<Q", bytes(data[:8]))[0]
    rng = random.Random(0)
    for i in range(40):
        damaged = bytearray(data)
        for _ in range(3):
            damaged[rng.randrange(header_end)] = rng.randrange(256)
        path = tmp_path / f"d{i}.safetensors"
        path.write_bytes(bytes(damaged))
        try:
            load_model(path)
        except NNFError:
            pass


@pytest.mark.parametrize("content,suffix,error,match", [
    (b"", ".safetensors", CorruptFileError, "is empty"),
    (b"hello world", ".pt", CorruptFileError, "not a readable PyTorch file"),
    (b"x" * 100, ".safetensors", CorruptFileError, "not a readable safetensors file"),
    (b"\x89HDF\r\n\x1a\n" + b"\0" * 100, ".h5", ConfigError, r"unsupported model file type '\.h5'"),
    (b"weights", ".txt", ConfigError, r"unsupported model file type '\.txt'.*\.safetensors"),
])
def test_foreign_files(tmp_path, content, suffix, error, match):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    with pytest.raises(error, match=match):
        load_model(path, arch="lenet")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(ConfigError, match="got a directory"):
        load_model(tmp_path)


@pytest.mark.parametrize("obj", [torch.zeros(3), [torch.zeros(3)], {}, {"w": torch.zeros(2), "step": 3}, {1: torch.zeros(1)}])
def test_pt_that_is_not_a_state_dict(tmp_path, obj):
    torch.save(obj, tmp_path / "x.pt")
    with pytest.raises(CorruptFileError, match="state dict|not tensors"):
        load_model(tmp_path / "x.pt", arch="lenet")


@pytest.mark.parametrize("meta_text,match", [
    ('{"arch": "lenet", "arch_args": {', "not valid JSON"),
    ('["lenet"]', "no 'arch' entry"),
    ('{"arch": "lenet", "input_shape": "x"}', "'input_shape' has a wrong type"),
    ('{"arch": "lenet", "metrics": null}', "'metrics' has a wrong type"),
    ('{"arch": "lenet", "arch_args": [1]}', "'arch_args' has a wrong type"),
    ('{"arch": "lenet", "normalization": {"mean": [0.1]}}', "'normalization' has a wrong type"),
    ('{"arch": "lenet", "format": "nnforensics/9"}', "not supported by this nnforensics"),
])
def test_corrupt_metadata_names_the_file(tiny_model_file, tmp_path, meta_text, match):
    path = _rewrite(tiny_model_file, tmp_path / "bad.safetensors", meta_text=meta_text)
    with pytest.raises(CorruptFileError, match=match) as info:
        load_model(path)
    assert "bad.safetensors" in str(info.value)


def test_safetensors_without_metadata_needs_arch(tiny_model_file, tmp_path):
    save_file(load_file(str(tiny_model_file)), str(tmp_path / "plain.safetensors"))
    with pytest.raises(ConfigError, match="no nnforensics metadata"):
        load_model(tmp_path / "plain.safetensors")
    loaded = load_model(tmp_path / "plain.safetensors", arch="lenet", arch_args={"width": 0.5})
    assert loaded.meta.arch == "lenet"


# ---------------------------------------------------------------- NaN / Inf

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused(tiny_model_file, tmp_path, bad):
    tensors = load_file(str(tiny_model_file))
    tensors["fc1.weight"][0, 0] = bad
    torch.save(tensors, tmp_path / "bad.pt")
    _rewrite(tiny_model_file, tmp_path / "bad.safetensors", **{"fc1.weight": tensors["fc1.weight"]})
    for path in (tmp_path / "bad.pt", tmp_path / "bad.safetensors"):
        with pytest.raises(InvalidWeightsError, match=r"NaN or Inf values: fc1\.weight \(1 of"):
            load_model(path, arch="lenet", arch_args={"width": 0.5})
    tensors_ok, _ = load_state_dict(tmp_path / "bad.pt", check=False)  # inspection stays possible
    assert not torch.isfinite(tensors_ok["fc1.weight"]).all()


def test_saving_non_finite_weights_writes_nothing(tmp_path):
    created = create_model("lenet", {"width": 0.5})
    with torch.no_grad():
        created.model.fc2.bias[0] = float("nan")
    with pytest.raises(InvalidWeightsError, match="fc2.bias"):
        save_model(created.model, tmp_path / "m.safetensors", created.meta)
    assert list(tmp_path.iterdir()) == []


def test_check_finite_ignores_integer_tensors():
    check_finite({"count": torch.tensor([1, 2]), "w": torch.zeros(2)})


# ---------------------------------------------------------------- code execution is refused

class _Exploit:
    """Unpickling this runs ``open(marker, "w")``: the marker proves code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle-2", "pickle-5", "nested"])
def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    payload = {"conv1.weight": _Exploit(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    elif writer == "nested":
        torch.save({"state_dict": {"a": torch.zeros(1)}, "extra": [_Exploit(marker)]}, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=int(writer[-1])))
    with pytest.raises(UnsafeFileError, match="refused to load") as info:
        load_model(path, arch="lenet")
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_user_arch_named_in_metadata_is_never_imported(tmp_path, tiny_model_file):
    marker = tmp_path / "IMPORTED"
    (tmp_path / "net.py").write_text(f"open({str(marker)!r}, 'w')\n")
    meta = read_meta(tiny_model_file)
    meta.arch = f"{tmp_path / 'net.py'}:Net"
    path = _rewrite(tiny_model_file, tmp_path / "user.safetensors", meta_text=meta.to_json())
    with pytest.raises(ConfigError, match="never imported"):
        load_model(path)
    assert not marker.exists()


# ---------------------------------------------------------------- writing

def test_save_refuses_bad_outputs(tmp_path, tiny_model_file):
    loaded = load_model(tiny_model_file)
    with pytest.raises(ConfigError, match=r"\.safetensors"):
        save_model(loaded.model, tmp_path / "m.pt", loaded.meta)
    with pytest.raises(FileClobberError, match="is also an input"):
        save_model(loaded.model, tiny_model_file, loaded.meta, inputs=[tiny_model_file])
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        save_model(loaded.model, tmp_path / "dir.safetensors", loaded.meta)
    os.link(tiny_model_file, tmp_path / "hard.safetensors")
    with pytest.raises(FileClobberError):
        save_model(loaded.model, tmp_path / "hard.safetensors", loaded.meta, inputs=[tiny_model_file])


def test_save_refuses_metadata_it_could_not_read_back(tmp_path, tiny_model_file):
    loaded = load_model(tiny_model_file)
    loaded.meta.metrics = None  # type: ignore[assignment]
    with pytest.raises(CorruptFileError, match="metrics"):
        save_model(loaded.model, tmp_path / "m.safetensors", loaded.meta)
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_saved_files_follow_the_umask(tmp_path, tiny_model_file, make_model_file):
    old = os.umask(0o022)
    try:
        path = make_model_file(tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_overwrite_keeps_metadata_consistent(tmp_path, make_model_file):
    path = make_model_file(tmp_path / "m.safetensors", seed=1)
    make_model_file(path, seed=2)
    assert read_meta(path).history == [{"op": "init", "seed": 2}]
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_meta_json_round_trip():
    meta = ModelMeta(arch="lenet", arch_args={"width": 0.5}, input_shape=[1, 28, 28], num_classes=10,
                     normalization={"mean": [0.1], "std": [0.3]}, metrics={"test_accuracy": 99.0})
    assert ModelMeta.from_json(meta.to_json()) == meta
    assert meta.with_history(op="x").history == [{"op": "x"}] and meta.history == []
