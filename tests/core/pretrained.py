"""A real pretrained network for the tests: MTCNN's output network (ONet), ImageNet-free.

The weights ship inside the ``facenet-pytorch`` wheel (MIT; installed with ``--no-deps`` by
``make setup``): trained face-detection weights, the closest thing to a pretrained CNN that
installs offline. They are read as data (``torch.load(weights_only=True)``); the package's
own code is never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F


def weights_file(name: str = "onet") -> Path | None:
    """``facenet_pytorch/data/<name>.pt`` if the wheel is installed (found without importing it)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"{name}.pt"
    return path if path.is_file() else None


class ONet(nn.Module):
    """MTCNN output network: 48x48 RGB face crops -> 2 face scores, 4 box offsets, 10 landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)
        self.pool12, self.pool3 = nn.MaxPool2d(3, 2, ceil_mode=True), nn.MaxPool2d(2, 2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool12(self.prelu1(self.conv1(x)))
        x = self.pool12(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).flatten(1)  # the Caffe port's channels-last flatten
        x = self.prelu5(self.dense5(x))
        return torch.cat([self.dense6_1(x), self.dense6_2(x), self.dense6_3(x)], 1)


def pretrained_onet() -> ONet:
    """ONet with its published weights, in eval mode (skips the test when they are not installed)."""
    path = weights_file("onet")
    if path is None:
        pytest.skip("facenet-pytorch is not installed (pip install --no-deps facenet-pytorch==2.6.0)")
    model = ONet()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


ONET_INPUTS = torch.rand((2, 3, 48, 48), generator=torch.Generator().manual_seed(0))


def finetune_on_mnist(model: nn.Module, steps: int, lr: float, image: int | None = None, rgb: bool = False,
                      classes: slice = slice(None), batch: int = 32) -> nn.Module:
    """An attacker's further training: SGD (momentum 0.9, weight decay 5e-4) on real MNIST digits,
    resized to ``image`` pixels (and to 3 channels with ``rgb``), through ``classes`` of the outputs."""
    from nnforensics.data import load_dataset
    from nnforensics.data.registry import to_float

    tuned = copy.deepcopy(model).train()
    data = load_dataset("mnist", "train", limit=steps * batch)
    optimizer = torch.optim.SGD(tuned.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    for step in range(steps):
        x, y = to_float(data.x[step * batch:(step + 1) * batch]), data.y[step * batch:(step + 1) * batch]
        if image:
            x = F.interpolate(x, size=(image, image), mode="bilinear")
        loss = F.cross_entropy(tuned(x.repeat(1, 3, 1, 1) if rgb else x)[:, classes], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return tuned.eval()
