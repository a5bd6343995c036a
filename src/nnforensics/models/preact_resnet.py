"""PreActResNet-18 for CIFAR-sized inputs, with kuangliu's / RobustBench's names.

Names: ``conv1``, ``layerN.M.bn1 / conv1 / bn2 / conv2 / shortcut.0``, ``bn`` (the final
BatchNorm before the classifier) and ``linear``, so kuangliu's ``PreActResNet18`` and
RobustBench's ``PreActResNet`` checkpoints load strictly:

* ``bn_before_fc=True`` (default, He et al. 2016): final BN-ReLU before the pool, the
  layout of RobustBench's ``PreActResNet(..., bn_before_fc=True)``
  (Rice2020OverfittingNetL2, Kireev2021Effectiveness); ``False``: no ``bn``
  (kuangliu's code, RobustBench's Wong2020Fast / Andriushchenko2020Understanding).
* ``preact_shortcut=True`` (default, He et al. and kuangliu): the projection shortcut
  reads the pre-activated input ``relu(bn1(x))`` (RobustBench's ``PreActBlockV2``);
  ``False`` reads the raw block input (RobustBench's ``PreActBlock``). The switch only
  changes the computation, not the names or shapes.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .lenet import _scaled
from .registry import register_model
from .sizes import ImageSize, image_hw


class PreActBlock(nn.Module):
    """``BN-ReLU-conv3x3-BN-ReLU-conv3x3`` plus a shortcut (1x1 conv when the shape changes)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, preact_shortcut: bool = True):
        super().__init__()
        self.preact_shortcut = preact_shortcut
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        if self.shortcut is None:
            shortcut = x
        else:
            shortcut = self.shortcut(out if self.preact_shortcut else x)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet (CIFAR stem: 3x3 stride-1 ``conv1``).

    Args:
        num_blocks: blocks per stage (``(2, 2, 2, 2)`` for PreActResNet-18).
        num_classes: outputs of ``linear``.
        in_channels: channels of the input images.
        width: channel multiplier (64 * width channels in ``layer1``).
        bn_before_fc: final ``bn`` + ReLU before the global pool.
        preact_shortcut: projection shortcuts read ``relu(bn1(x))`` instead of ``x``.

    Shapes: ``(B, in_channels, H, W) -> (B, num_classes)``; global average pool over
    the ``H/8 x W/8`` map (RobustBench's ``avg_pool2d(out, 4)`` on 32x32 inputs).
    """

    def __init__(
        self,
        num_blocks: tuple[int, ...] = (2, 2, 2, 2),
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        bn_before_fc: bool = True,
        preact_shortcut: bool = True,
    ):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if len(num_blocks) != 4:
            raise ValueError(f"num_blocks must give four stages, got {num_blocks}")
        self.bn_before_fc = bn_before_fc
        self.in_planes = _scaled(64, width)
        self.conv1 = nn.Conv2d(in_channels, self.in_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(_scaled(64, width), num_blocks[0], 1, preact_shortcut)
        self.layer2 = self._make_layer(_scaled(128, width), num_blocks[1], 2, preact_shortcut)
        self.layer3 = self._make_layer(_scaled(256, width), num_blocks[2], 2, preact_shortcut)
        self.layer4 = self._make_layer(_scaled(512, width), num_blocks[3], 2, preact_shortcut)
        if bn_before_fc:
            self.bn = nn.BatchNorm2d(self.in_planes)
        self.linear = nn.Linear(self.in_planes, num_classes)

    def _make_layer(self, planes: int, num_blocks: int, stride: int, preact_shortcut: bool) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(PreActBlock(self.in_planes, planes, s, preact_shortcut))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        if self.bn_before_fc:
            out = F.relu(self.bn(out))
        # a pool over the whole map: RobustBench's avg_pool2d(out, k) on 32x32 inputs, bit for bit
        out = torch.flatten(F.avg_pool2d(out, tuple(out.shape[-2:])), 1)
        return self.linear(out)


@register_model(
    "preact_resnet18",
    input_shape=(3, 32, 32),
    family="preact_resnet",
    description="PreActResNet-18 (kuangliu / RobustBench names), CIFAR stem",
)
def preact_resnet18(
    num_classes: int = 10,
    in_channels: int = 3,
    width: float = 1.0,
    bn_before_fc: bool = True,
    preact_shortcut: bool = True,
    image_size: ImageSize = 32,
) -> PreActResNet:
    image_hw(image_size)  # any size runs (padded stride-2 convolutions, global pool): only checked
    return PreActResNet((2, 2, 2, 2), num_classes, in_channels, width, bn_before_fc, preact_shortcut)
