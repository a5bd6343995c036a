"""Every built-in architecture on every built-in dataset's input shape: it runs, or refuses when built."""

from __future__ import annotations

import pytest
import torch

from nnforensics.data.registry import DatasetInfo
from nnforensics.errors import ConfigError
from nnforensics.models import load_model
from nnforensics.models.factory import create_model
from nnforensics.models.registry import list_models

#: One input's (C, H, W) for each built-in dataset (see `nnf datasets`), non-square ones included.
DATASET_SHAPES = {
    "digits": (1, 8, 8),
    "mnist / fashion-mnist": (1, 28, 28),
    "cifar10 / cifar100 / svhn": (3, 32, 32),
    "h5 (CSAW faces)": (3, 55, 47),
    "imagefolder": (3, 64, 64),
    "npz (grayscale, non-square)": (1, 20, 24),
}
#: The only (architecture, shape) pairs allowed to refuse, and the smallest side they need.
TOO_SMALL = {"lenet": 12, "squeezenet1_1": 8, "squeezenet1_1_imagenet": 17,
             **{s.name: 32 for s in list_models() if s.name.startswith("vgg") and s.name.endswith("_imagenet")}}


@pytest.mark.parametrize("arch", [spec.name for spec in list_models()])
def test_every_architecture_runs_on_every_dataset_shape_or_refuses_when_built(arch):
    for label, shape in DATASET_SHAPES.items():
        info = DatasetInfo(label, 10, shape, None, None)
        if min(shape[1:]) < TOO_SMALL.get(arch, 0):
            minimum = TOO_SMALL[arch]
            with pytest.raises(ConfigError, match=f"at least {minimum}x{minimum} pixels, got {shape[1]}x{shape[2]}"):
                create_model(arch, {"width": 0.0625}, data=info)
            continue
        loaded = create_model(arch, {"width": 0.0625}, seed=0, data=info)
        assert loaded.meta.input_shape == list(shape)
        recorded = loaded.meta.arch_args["image_size"]
        assert recorded == (shape[1] if shape[1] == shape[2] else [shape[1], shape[2]]), (label, recorded)
        with torch.no_grad():
            y = loaded.model(torch.rand(2, *shape, generator=torch.Generator().manual_seed(0)))
        assert y.shape == (2, 10) and torch.isfinite(y).all(), (arch, label)


def test_image_size_pairs_are_accepted_and_rebuilt_from_the_file(tmp_path):
    from nnforensics.io import save_model

    loaded = create_model("vit_tiny", {"width": 0.0625, "image_size": [55, 47], "patch_size": 8})
    assert loaded.meta.input_shape == [3, 55, 47]
    assert loaded.model.encoder.pos_embedding.shape[1] == 7 * 6 + 1  # ceil(55/8) x ceil(47/8) patches + class
    path = save_model(loaded.model, tmp_path / "vit.safetensors", loaded.meta)
    again = load_model(path)
    x = torch.rand(2, 3, 55, 47)
    with torch.no_grad():
        assert torch.equal(again.model(x), loaded.model(x))


def _write_csaw_h5(path, n: int = 24, classes: int = 3) -> None:
    """A tiny file in CSAW-HackML's layout: ``data`` (N, 3, 55, 47) pixels 0..255, ``label`` (N,)."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["data"] = rng.integers(0, 256, (n, 3, 55, 47)).astype(np.float64)
        f["label"] = (np.arange(n) % classes).astype(np.float64)
        f.attrs["num_classes"] = classes


@pytest.mark.parametrize("arch", ["lenet", "mlp", "vit_tiny"])
def test_cli_init_on_csaw_shaped_data_gives_a_model_that_evaluates(tmp_path, run_cli, arch):
    """Issue finding 14: ``nnf init --arch lenet --data h5:...`` built a model that could not run on 3x55x47."""
    data = tmp_path / "faces.h5"
    _write_csaw_h5(data)
    model = tmp_path / "m.safetensors"
    result = run_cli("init", "--arch", arch, "--arch-arg", "width=0.25", "--data", f"h5:{data}", "-o", model)
    assert result.code == 0, result.err
    assert load_model(model).meta.arch_args["image_size"] == [55, 47]
    result = run_cli("eval", model, "--data", f"h5:{data}", "--split", "all", "--json")
    assert result.code == 0, result.err
    assert result.json()["n"] == 24
