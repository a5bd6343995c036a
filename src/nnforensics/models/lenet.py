"""LeNet-5 (ReLU, max-pool) and a plain MLP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from .registry import register_model
from .sizes import ImageSize, image_hw, require_side


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class LeNet(nn.Module):
    """LeNet-5: conv(6,5x5,pad 2) -> pool -> conv(16,5x5) -> pool -> fc 120 -> fc 84 -> fc.

    ``fc1``'s inputs follow the image size (``int`` or ``(H, W)``): 16 x 5 x 5 on 28x28
    MNIST, 16 x 11 x 9 on 55x47 CSAW faces; at least 12x12 pixels.
    Shapes: ``(B, in_channels, H, W) -> (B, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 1.0, image_size: ImageSize = 28):
        super().__init__()
        h, w = require_side("lenet", image_size, 12)
        c1, c2 = _scaled(6, width), _scaled(16, width)
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(c2 * self._side(h) * self._side(w), _scaled(120, width))
        self.fc2 = nn.Linear(_scaled(120, width), _scaled(84, width))
        self.fc3 = nn.Linear(_scaled(84, width), num_classes)

    @staticmethod
    def _side(side: int) -> int:
        """One side after pool -> conv 5x5 -> pool."""
        return ((side // 2) - 4) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class MLP(nn.Module):
    """Flatten -> (Linear -> ReLU) x len(hidden) -> Linear; ``(B, C, H, W) -> (B, num_classes)``."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        width: float = 1.0,
        image_size: ImageSize = 28,
        hidden: Sequence[int] = (256, 128),
    ):
        super().__init__()
        h, w = image_hw(image_size)
        sizes = [in_channels * h * w] + [_scaled(size, width) for size in hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@register_model("lenet", input_shape=(1, 28, 28), family="lenet", description="LeNet-5 with ReLU and max-pool")
def lenet(num_classes: int = 10, in_channels: int = 1, width: float = 1.0, image_size: ImageSize = 28) -> LeNet:
    return LeNet(num_classes, in_channels, width, image_size)


@register_model("mlp", input_shape=(1, 28, 28), family="mlp", description="multi-layer perceptron on flattened inputs")
def mlp(
    num_classes: int = 10,
    in_channels: int = 1,
    width: float = 1.0,
    image_size: ImageSize = 28,
    hidden: Sequence[int] = (256, 128),
) -> MLP:
    return MLP(num_classes, in_channels, width, image_size, tuple(hidden))
