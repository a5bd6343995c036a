"""Every built-in architecture (narrow): permuting all groups keeps the function; lap restores it."""

from __future__ import annotations

import pytest
import torch

from nnforensics.models import list_models
from nnforensics.models.factory import create_model
from nnforensics.permutation import permute
from nnforensics.resynchronization import resync

NAMES = [spec.name for spec in list_models()]


def _narrow(name: str):
    spec = next(s for s in list_models() if s.name == name)
    args: dict = {"width": 0.125, "num_classes": 7}
    if name.startswith("vit"):
        args["image_size"] = 32
    model = create_model(name, args, seed=1)
    shape = list(model.meta.input_shape)
    if spec.input_shape[-1] >= 224 and not name.startswith("vit"):
        shape = [shape[0], 64, 64]  # ImageNet layouts at a small image size
    return model, torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", NAMES)
def test_permute_all_groups_then_lap_restores(name):
    loaded, x = _narrow(name)
    model = loaded.model.eval()
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    result = permute(model, seed=7, example_inputs=x)
    assert len(result.perms) >= 2
    assert result.relative_output_diff < 1e-5
    restored = resync(model, result.model, method="lap", truth=result.perms, example_inputs=x,
                      group_set=result.group_set)
    assert restored.psi == 100.0
    for key, value in model.state_dict().items():
        assert torch.equal(value, restored.model.state_dict()[key]), key
