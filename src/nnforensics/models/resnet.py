"""ResNet-18/34/50/101/152 with torchvision's module names.

Naming scheme (as for VGG):

* ``resnet18`` ... ``resnet152``: the CIFAR variant (default input ``3x32x32``): a 3x3
  stride-1 ``conv1`` and no max-pool (``maxpool`` is an ``nn.Identity``, so the names
  stay torchvision's: ``conv1, bn1, maxpool, layer1..4, avgpool, fc``).
* ``resnet18_imagenet`` ...: torchvision's network exactly (7x7/2 ``conv1`` + 3x3/2
  max-pool); a torchvision state dict loads into it strictly.

Blocks are named as in torchvision: ``conv1 bn1 conv2 bn2 [conv3 bn3] downsample.0
downsample.1``. ReLUs are not in-place.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from .lenet import _scaled
from .registry import register_model
from .sizes import ImageSize, image_hw

STEMS = ("cifar", "imagenet")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a residual connection (torchvision's names)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride, "ResNet v1.5"), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


#: depth -> (block, blocks per stage)
DEPTHS: dict[int, tuple[type[BasicBlock | Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """ResNet with torchvision's module names.

    Args:
        depth: 18, 34, 50, 101 or 152.
        num_classes: outputs of ``fc``.
        in_channels: channels of the input images.
        width: channel multiplier (64 * width channels in ``layer1``).
        stem: ``"cifar"`` (3x3 stride-1 ``conv1``, no max-pool) or ``"imagenet"``
            (7x7 stride-2 ``conv1`` and a 3x3 stride-2 max-pool).

    Shapes: ``(B, in_channels, H, W) -> (B, num_classes)``; the feature map is
    ``H/8`` (CIFAR stem) or ``H/32`` (ImageNet stem) before the global pool.
    """

    def __init__(self, depth: int = 18, num_classes: int = 10, in_channels: int = 3, width: float = 1.0, stem: str = "cifar"):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {', '.join(map(str, DEPTHS))}, got {depth}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        block, blocks = DEPTHS[depth]
        self.inplanes = _scaled(64, width)
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=False)
        self.layer1 = self._make_layer(block, _scaled(64, width), blocks[0])
        self.layer2 = self._make_layer(block, _scaled(128, width), blocks[1], stride=2)
        self.layer3 = self._make_layer(block, _scaled(256, width), blocks[2], stride=2)
        self.layer4 = self._make_layer(block, _scaled(512, width), blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(_scaled(512, width) * block.expansion, num_classes)
        self._init_weights()

    def _make_layer(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        """torchvision's initialisation (``fc`` keeps PyTorch's default)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _factory(name: str, depth: int, stem: str) -> Callable[..., ResNet]:
    def factory(num_classes: int = 10 if stem == "cifar" else 1000, in_channels: int = 3, width: float = 1.0,
                image_size: ImageSize = 32 if stem == "cifar" else 224) -> ResNet:
        image_hw(image_size)  # any size runs (padded stride-2 convolutions, global pool): only checked
        return ResNet(depth, num_classes, in_channels, width, stem)

    factory.__name__ = factory.__qualname__ = name
    return factory


def _register_all() -> None:
    for depth, (block, _) in DEPTHS.items():
        kind = "basic blocks" if block is BasicBlock else "bottlenecks"
        name = f"resnet{depth}"
        register_model(
            name,
            input_shape=(3, 32, 32),
            family="resnet",
            description=f"ResNet-{depth} ({kind}), CIFAR stem: 3x3 stride-1 conv, no max-pool",
        )(_factory(name, depth, "cifar"))
        register_model(
            f"{name}_imagenet",
            input_shape=(3, 224, 224),
            family="resnet",
            description=f"ResNet-{depth} ({kind}), torchvision ImageNet stem: 7x7/2 conv + max-pool",
            torchvision=name,
        )(_factory(f"{name}_imagenet", depth, "imagenet"))


_register_all()
