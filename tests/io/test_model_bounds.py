"""What a model file's metadata may ask for: shapes checked before allocating, bounded arguments, sane normalisation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from nnforensics.data.registry import DatasetInfo
from nnforensics.errors import ConfigError, CorruptFileError, ShapeMismatchError
from nnforensics.io import read_meta
from nnforensics.models import load_model
from nnforensics.io.meta import META_KEY
from nnforensics.models.factory import create_model


def _with_meta(src: Path, dest: Path, text: str | None = None, **changes) -> Path:
    """Copy a model file with its metadata JSON replaced by ``text``, or with top-level ``changes``."""
    with safe_open(str(src), "pt") as handle:
        metadata = dict(handle.metadata())
    if text is None:
        meta = json.loads(metadata[META_KEY])
        meta.update(changes)
        text = json.dumps(meta)
    metadata[META_KEY] = text
    save_file(load_file(str(src)), str(dest), metadata=metadata)
    return dest


@pytest.fixture
def mlp_file(tmp_path: Path, make_model_file) -> Path:
    """An MLP (784 -> 64 -> 32 -> 10): a 200 KB file."""
    return make_model_file(tmp_path / "mlp.safetensors", arch="mlp", arch_args={"hidden": [64, 32]})


# ---------------------------------------------------------------- finding 7: no allocation before the shape check

_LOAD_UNDER_LIMIT = """
import resource, sys
import nnforensics.models.factory, nnforensics.models.zoo, nnforensics.utils.device  # imported before the limit
from nnforensics.errors import ShapeMismatchError
from nnforensics.models import load_model
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (size + 1024**3, resource.getrlimit(resource.RLIMIT_AS)[1]))
try:
    load_model(sys.argv[1])
except ShapeMismatchError as err:
    print("REFUSED:", err)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the address-space size from /proc")
def test_metadata_asking_for_a_huge_network_is_refused_before_allocating(tmp_path, mlp_file):
    """Issue finding 7: hidden=[40000, 40000] (6.4 GB) in a 200 KB file; 1 GiB of address space must suffice."""
    big = _with_meta(mlp_file, tmp_path / "big.safetensors", arch_args={"hidden": [40000, 40000], "width": 1.0})
    assert big.stat().st_size < 300_000
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _LOAD_UNDER_LIMIT, str(big)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "REFUSED: weights do not match architecture 'mlp'" in proc.stdout, proc.stdout
    assert "layers.1.weight file (64, 784) vs model (40000, 784)" in proc.stdout


def test_metadata_asking_for_a_million_layers_is_refused_at_once(tmp_path, make_model_file):
    """Building on the meta device stops after about as many tensors as the file holds."""
    src = make_model_file(tmp_path / "vit.safetensors", arch="vit_tiny", arch_args={"width": 0.125})
    args = {**read_meta(src).arch_args, "num_layers": 50_000}
    bad = _with_meta(src, tmp_path / "deep.safetensors", arch_args=args)
    start = time.perf_counter()
    with pytest.raises(ShapeMismatchError, match="far more than the file holds"):
        load_model(bad)
    assert time.perf_counter() - start < 5


def test_dtype_kind_must_match(tmp_path, tiny_model_file):
    tensors = load_file(str(tiny_model_file))
    tensors["fc1.weight"] = tensors["fc1.weight"].to(torch.int32)
    with safe_open(str(tiny_model_file), "pt") as handle:
        save_file(tensors, str(tmp_path / "int.safetensors"), metadata=dict(handle.metadata()))
    with pytest.raises(ShapeMismatchError, match=r"dtype mismatch: fc1\.weight file integer vs model floating-point"):
        load_model(tmp_path / "int.safetensors")


def test_half_precision_files_still_load(tmp_path, tiny_model_file):
    tensors = {k: v.half() for k, v in load_file(str(tiny_model_file)).items()}
    torch.save(tensors, tmp_path / "half.pt")
    loaded = load_model(tmp_path / "half.pt", arch="lenet", arch_args={"width": 0.5})
    assert torch.equal(loaded.model.conv1.weight, tensors["conv1.weight"].float())


# ---------------------------------------------------------------- bounded metadata

DEEP = '{"arch": "lenet", "extra": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"


@pytest.mark.parametrize(("text", "changes", "match"), [
    (DEEP, {}, "nested too deeply"),
    ('{"arch": "lenet", "extra": {"x": ' + "[" * 40 + "]" * 40 + "}}", {}, "nested too deeply"),
    ('{"arch": "lenet", "extra": {"pad": "' + "x" * 2_000_000 + '"}}', {}, "characters long"),
    ('{"arch": "lenet", "arch_args": {"width": 1' + "0" * 5000 + "}}", {}, "not valid JSON"),
    (None, {"arch_args": {"width": 0.5, "hidden": [1] * 100}}, "hidden is a list of 100 items"),
    (None, {"arch_args": {"width": float("nan")}}, "width=nan is not finite"),
    (None, {"arch_args": {"width": 0.5, "cfg": {"a": 1}}}, "cfg is a dict"),
    (None, {"arch_args": {"width": 10**40}}, "out of range"),
    (None, {"arch_args": {"width": 0.5, "hidden": [[1, 2]]}}, "nested list"),
    (None, {"input_shape": [1, 100_000, 100_000]}, "values per input"),
    (None, {"input_shape": [1, 0, 28]}, "positive sizes"),
    (None, {"num_classes": 10**12}, "'num_classes' has a wrong type or value"),
])
def test_metadata_is_bounded(tmp_path, tiny_model_file, text, changes, match):
    bad = _with_meta(tiny_model_file, tmp_path / "bad.safetensors", text, **changes)
    for read in (read_meta, load_model):
        with pytest.raises(CorruptFileError, match=match) as info:
            read(bad)
        assert "bad.safetensors" in str(info.value)


# ---------------------------------------------------------------- finding 9: normalisation

@pytest.mark.parametrize(("norm", "match"), [
    ({"mean": [0.1307], "std": [0.0]}, "every std must be positive"),
    ({"mean": [0.1307], "std": [-0.3]}, "every std must be positive"),
    ({"mean": [0.1307], "std": [float("nan")]}, "finite"),
    ({"mean": [float("inf")], "std": [0.3]}, "finite"),
    ({"mean": [0.1, 0.1, 0.1], "std": [0.3, 0.3, 0.3]}, "3 values for 1 input channels"),
    ({"mean": [], "std": []}, "0 means"),
])
def test_unusable_normalisation_in_a_file_is_refused(tmp_path, tiny_model_file, run_cli, norm, match):
    bad = _with_meta(tiny_model_file, tmp_path / "bad.safetensors", normalization=norm)
    with pytest.raises(CorruptFileError, match=f"'normalization' has a wrong type or value.*{match}"):
        load_model(bad)


def test_eval_refuses_a_zero_std_instead_of_scoring_noise(tmp_path, run_cli):
    """Issue finding 9: ``nnf eval`` exited 0 with a meaningless accuracy."""
    model = tmp_path / "m.safetensors"
    assert run_cli("init", "--arch", "mlp", "--arch-arg", "width=0.25", "--data", "digits", "-o", model).code == 0
    for std in (0.0, float("nan")):
        bad = _with_meta(model, tmp_path / "bad.safetensors", normalization={"mean": [0.3], "std": [std]})
        result = run_cli("eval", bad, "--data", "digits", "--split", "test")
        assert result.code == 1, result
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and "normalization" in lines[0] and "bad.safetensors" in lines[0], result.err


@pytest.mark.parametrize("std", [float("nan"), math.inf])
def test_models_built_from_data_need_a_usable_normalisation(std):
    """Neither a dataset nor a model built from one accepts a NaN or Inf normalisation."""
    with pytest.raises(ConfigError, match="odd: mean and std must be finite"):
        DatasetInfo("odd", 10, (1, 28, 28), (0.5,), (std,))
    info = DatasetInfo("odd", 10, (1, 28, 28), (0.5,), (0.3,))
    object.__setattr__(info, "std", (std,))  # a reader that skipped the check
    with pytest.raises(ConfigError, match="dataset odd: unusable normalisation.*finite"):
        create_model("lenet", {"width": 0.5}, data=info)


def test_user_modules_are_imported_outside_the_meta_device(tmp_path, monkeypatch):
    """A tensor a user's module makes at import must stay a real tensor after the meta-device check."""
    name = "nnf_test_user_net_with_a_table"
    (tmp_path / f"{name}.py").write_text(
        "import torch, torch.nn as nn\n"
        "SCALE = torch.full((1,), 2.0)\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, num_classes=3):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(4, num_classes)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x) * SCALE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    torch.save({"fc.weight": torch.ones(3, 4), "fc.bias": torch.zeros(3)}, tmp_path / "net.pt")
    loaded = load_model(tmp_path / "net.pt", arch=f"{name}:Net")
    assert torch.equal(loaded.model(torch.ones(1, 4)), torch.full((1, 3), 8.0))


def test_buffers_outside_the_state_dict_are_bounded_too(tmp_path):
    """Non-persistent buffers are not in the file: arguments must not make them huge either."""
    (tmp_path / "tabled.py").write_text(
        "import torch, torch.nn as nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, table=4):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(4, 3)\n"
        "        self.register_buffer('table', torch.zeros(table), persistent=False)\n")
    torch.save({"fc.weight": torch.ones(3, 4), "fc.bias": torch.zeros(3)}, tmp_path / "net.pt")
    arch = f"{tmp_path / 'tabled.py'}:Net"
    assert load_model(tmp_path / "net.pt", arch=arch).model.table.shape == (4,)
    with pytest.raises(ShapeMismatchError, match=r"would allocate 10,000,000,015 values, far more than the 15"):
        load_model(tmp_path / "net.pt", arch=arch, arch_args={"table": 10**10})


# ---------------------------------------------------------------- review: any failure to build is exit 1

@pytest.mark.parametrize("arch, arch_args, match", [
    ("mlp", {"hidden": [2**31 - 1, 2**31 - 1], "num_classes": 10}, "Storage size calculation overflowed"),
    ("vit_tiny", {"image_size": 2**30, "patch_size": 1}, "cannot build 'vit_tiny'"),
])
def test_arguments_a_builder_cannot_handle_are_one_line_exit_1(tmp_path, mlp_file, run_cli, arch, arch_args, match):
    """Review of issue 9: torch's RuntimeError while building on the meta device was exit 3 "internal error"."""
    bad = _with_meta(mlp_file, tmp_path / "bad.safetensors", arch=arch, arch_args=arch_args, input_shape=[])
    with pytest.raises(ConfigError, match=match):
        load_model(bad)
    result = run_cli("layers", bad)
    lines = result.err.strip().splitlines()
    assert result.code == 1 and len(lines) == 1 and lines[0].startswith("error: cannot build"), result.err
    assert len(lines[0]) < 600  # long argument lists are cut


def test_any_exception_of_a_builtin_constructor_becomes_a_config_error():
    from nnforensics.models.registry import ModelSpec

    def broken(width: float = 1.0):
        raise RuntimeError("something torch did not like\nsecond line")

    with pytest.raises(ConfigError, match=r"cannot build 'broken' with \{'width': 0\.5\}: RuntimeError: something "
                                          r"torch did not like$"):
        ModelSpec("broken", broken, (1, 28, 28), "test").build(width=0.5)
