"""A model's input shape, recorded in a file or given, is bounded and must fit the architecture.

Review of issue 9: a 250 KB LeNet file whose metadata said input_shape [1, 4096, 4096]
made ``nnf groups`` run 17 s at 3.4 GB before failing. A built-in architecture's
input shape follows from its own arguments (in_channels, image_size); random example
inputs drawn from a shape a file records are bounded far below the 16M-value limit of
``--input-shape`` (which can confirm a larger one).
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from nnforensics.errors import CorruptFileError
from nnforensics.io import ModelMeta, read_meta, save_model
from nnforensics.models import load_model
from nnforensics.io.limits import MAX_INPUT_VALUES, MAX_RECORDED_INPUT_VALUES
from nnforensics.io.meta import META_KEY


def _recording(src: Path, dest: Path, shape: list[int]) -> Path:
    """A copy of model file ``src`` whose metadata records ``shape`` as the input shape."""
    with safe_open(str(src), "pt") as handle:
        metadata = dict(handle.metadata())
    meta = json.loads(metadata[META_KEY])
    meta["input_shape"] = shape
    metadata[META_KEY] = json.dumps(meta)
    save_file(load_file(str(src)), str(dest), metadata=metadata)
    return dest


def _one_error_line(result) -> str:
    lines = result.err.strip().splitlines()
    assert result.code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result
    return lines[0]


def test_the_bounds_are_sane():
    """Random examples from a file: a few million values (a 3x224x224 image is 150,528)."""
    assert 3 * 224 * 224 * 20 < MAX_RECORDED_INPUT_VALUES < MAX_INPUT_VALUES // 2


@pytest.mark.parametrize("shape", [[1, 4096, 4096], [1, 64, 64], [3, 28, 28], [784]])
def test_a_builtin_models_recorded_shape_must_follow_its_arguments(tmp_path, tiny_model_file, shape):
    bad = _recording(tiny_model_file, tmp_path / "bad.safetensors", shape)
    assert read_meta(bad).input_shape == shape  # the metadata itself is well-formed
    recorded = re.escape(f"({', '.join(map(str, shape))})")
    with pytest.raises(CorruptFileError, match=rf"bad\.safetensors.*records input shape {recorded}, but "
                                               rf"architecture 'lenet' .* takes inputs \(1, 28, 28\)"):
        load_model(bad)


def test_groups_refuses_such_a_file_at_once(tmp_path, tiny_model_file, run_cli):
    bad = _recording(tiny_model_file, tmp_path / "bad.safetensors", [1, 64, 64])
    start = time.perf_counter()
    line = _one_error_line(run_cli("groups", bad))
    assert "records input shape (1, 64, 64)" in line and time.perf_counter() - start < 5


def test_a_given_shape_must_fit_a_builtin_architecture(tmp_path, run_cli):
    line = _one_error_line(run_cli("groups", "--arch", "lenet", "--input-shape", "1,32,32"))
    assert "input shape (1, 32, 32) does not fit" in line and "image_size" in line
    out = tmp_path / "m.safetensors"
    line = _one_error_line(run_cli("init", "--arch", "lenet", "--input-shape", "1,32,32", "-o", out))
    assert "does not fit" in line and not out.exists()  # never a file that cannot load
    assert run_cli("init", "--arch", "lenet", "--arch-arg", "image_size=32", "--input-shape", "1,32,32",
                   "-o", out).code == 0
    assert read_meta(out).input_shape == [1, 32, 32] and load_model(out).meta.input_shape == [1, 32, 32]


POOL = textwrap.dedent("""
    import torch
    import torch.nn as nn


    class Pool(nn.Module):
        \"\"\"Averages each channel of an image of any size, then two linear layers.\"\"\"

        def __init__(self):
            super().__init__()
            self.a = nn.Linear(1, 8)
            self.b = nn.Linear(8, 2)

        def forward(self, x):
            return self.b(torch.relu(self.a(x.mean(dim=(-2, -1)))))
""")


def test_a_large_recorded_shape_feeds_random_inputs_only_when_confirmed(tmp_path, run_cli):
    """A user's architecture records its own shape; past the bound, --input-shape must confirm it."""
    (tmp_path / "pool.py").write_text(POOL)
    arch = f"{tmp_path / 'pool.py'}:Pool"
    namespace: dict = {}
    exec(compile(POOL, "pool.py", "exec"), namespace)  # the test's own code, to make the weights
    side = 2100  # 1 x 2100 x 2100 = 4.41M values, just past the bound
    assert side * side > MAX_RECORDED_INPUT_VALUES
    model = tmp_path / "pool.safetensors"
    torch.manual_seed(0)
    save_model(namespace["Pool"](), model, ModelMeta(arch=arch, input_shape=[1, side, side]))
    line = _one_error_line(run_cli("groups", model, "--arch", arch))
    assert f"records an input shape (1, {side}, {side}) of 4,410,000 values" in line
    assert f"--input-shape 1,{side},{side}" in line
    result = run_cli("groups", model, "--arch", arch, "--input-shape", f"1,{side},{side}", "--json")
    assert result.code == 0, result.err
    assert [g["size"] for g in result.json()["groups"]] == [8]


def test_size_independent_networks_may_record_any_image_size_of_their_channels(tmp_path, make_model_file,
                                                                               run_cli):
    """Global pooling: a ResNet's weights fit every image size, so files written before image_size
    was recorded (a CIFAR-stem ResNet trained on 28x28 MNIST) and other sizes still load;
    a shape with other channels, or too big for random examples, is still refused."""
    src = make_model_file(tmp_path / "r.safetensors", arch="resnet18", arch_args={"width": 0.125, "in_channels": 1})
    for shape in ([1, 28, 28], [1, 64, 48]):
        assert load_model(_recording(src, tmp_path / "ok.safetensors", shape)).meta.input_shape == shape
    with pytest.raises(CorruptFileError, match="records input shape"):
        load_model(_recording(src, tmp_path / "bad.safetensors", [3, 32, 32]))
    huge = _recording(src, tmp_path / "huge.safetensors", [1, 4096, 4096])
    line = _one_error_line(run_cli("groups", huge))
    assert "--input-shape" in line
    assert run_cli("init", "--arch", "resnet18", "--arch-arg", "width=0.125", "--input-shape", "3,64,64",
                   "-o", tmp_path / "r64.safetensors").code == 0
