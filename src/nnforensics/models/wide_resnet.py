"""Wide ResNets for CIFAR (WRN-28-10, WRN-34-10) with RobustBench's names.

Names as in RobustBench's ``WideResNet`` (from the TRADES code): ``conv1``,
``blockN.layer.M.bn1 / relu1 / conv1 / bn2 / relu2 / conv2 / convShortcut``, ``bn1``,
``relu``, ``fc``, so RobustBench checkpoints load strictly. Many of them
(Carmon2019Unlabeled, Zhang2019Theoretically, Wang2020Improving, ...) also hold an
unused ``sub_block1`` copy of ``block1``: build with ``sub_block1=True`` to load those.
ReLUs are not in-place.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .lenet import _scaled
from .registry import register_model
from .sizes import ImageSize, image_hw


class WideBasicBlock(nn.Module):
    """Pre-activation block: ``BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3`` + shortcut.

    When the shape changes, the 1x1 ``convShortcut`` reads the pre-activated input
    (as in RobustBench); otherwise the shortcut is the raw input.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.convShortcut: nn.Module | None = None  # RobustBench's camelCase name, for strict loading
        if in_planes != out_planes:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(act)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        shortcut = x if self.convShortcut is None else self.convShortcut(act)
        return shortcut + out


class NetworkBlock(nn.Module):
    """``n`` blocks in ``self.layer`` (the first one changes width and stride)."""

    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.layer = nn.Sequential(*[
            WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, drop_rate)
            for i in range(n)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-k: three stages of ``(depth - 4) / 6`` blocks, ``16k, 32k, 64k`` channels.

    Args:
        depth: total depth; ``depth - 4`` must be a multiple of 6 (28, 34, 40, 70...).
        widen_factor: k.
        num_classes: outputs of ``fc``.
        in_channels: channels of the input images.
        width: channel multiplier applied on top of k (every stage, and the 16-channel stem).
        drop_rate: dropout between the two convolutions of a block (training only).
        sub_block1: also build RobustBench's unused ``sub_block1`` (for loading checkpoints).
        bias_last: ``fc`` has a bias.

    Shapes: ``(B, in_channels, H, W) -> (B, num_classes)``; global average pool over
    the ``H/4 x W/4`` map (RobustBench's ``avg_pool2d(out, 8)`` on 32x32 inputs).
    """

    def __init__(
        self,
        depth: int = 28,
        widen_factor: int = 10,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        drop_rate: float = 0.0,
        sub_block1: bool = False,
        bias_last: bool = True,
    ):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth - 4 must be a positive multiple of 6 (e.g. 28, 34), got depth={depth}")
        if widen_factor < 1:
            raise ValueError(f"widen_factor must be at least 1, got {widen_factor}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
        n = (depth - 4) // 6
        channels = [_scaled(c, width) for c in (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)]
        self.conv1 = nn.Conv2d(in_channels, channels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, channels[0], channels[1], 1, drop_rate)
        if sub_block1:
            self.sub_block1 = NetworkBlock(n, channels[0], channels[1], 1, drop_rate)  # never used in forward
        self.block2 = NetworkBlock(n, channels[1], channels[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, channels[2], channels[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.relu = nn.ReLU(inplace=False)
        self.fc = nn.Linear(channels[3], num_classes, bias=bias_last)
        self._init_weights()

    def _init_weights(self) -> None:
        """RobustBench's (TRADES') initialisation."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.block1(out)
        out = self.block2(out)
        out = self.block3(out)
        out = self.relu(self.bn1(out))
        # a pool over the whole map: RobustBench's avg_pool2d(out, k) on 32x32 inputs, bit for bit
        out = torch.flatten(F.avg_pool2d(out, tuple(out.shape[-2:])), 1)
        return self.fc(out)


def _factory(name: str, depth: int, widen_factor: int) -> Callable[..., WideResNet]:
    def factory(
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        drop_rate: float = 0.0,
        sub_block1: bool = False,
        bias_last: bool = True,
        image_size: ImageSize = 32,
    ) -> WideResNet:
        image_hw(image_size)  # any size runs (padded stride-2 convolutions, global pool): only checked
        return WideResNet(depth, widen_factor, num_classes, in_channels, width, drop_rate, sub_block1, bias_last)

    factory.__name__ = factory.__qualname__ = name
    return factory


def _register_all() -> None:
    for depth, widen_factor in ((28, 10), (34, 10)):
        name = f"wide_resnet_{depth}_{widen_factor}"
        register_model(
            name,
            input_shape=(3, 32, 32),
            family="wide_resnet",
            description=f"WRN-{depth}-{widen_factor} for CIFAR (RobustBench names)",
        )(_factory(name, depth, widen_factor))


_register_all()
