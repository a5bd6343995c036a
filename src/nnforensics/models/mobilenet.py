"""MobileNetV2 with torchvision's module names.

Names: ``features.0.0`` / ``features.0.1`` (stem conv + BN), inverted residuals
``features.N.conv.0.0 ...`` (expand 1x1, depthwise 3x3, project 1x1 + BN),
``features.18`` (last 1x1 conv), ``classifier.1`` (Linear after dropout). Both variants
have torchvision's names *and shapes*; they differ only in two strides:

* ``mobilenet_v2``: CIFAR variant (default input ``3x32x32``): stride-1 stem and
  stride-1 second stage, so a 32x32 image ends as a 4x4 map (kuangliu's adaptation).
* ``mobilenet_v2_imagenet``: torchvision's strides (32x downsampling).

``width`` is torchvision's ``width_mult``: channels are rounded to multiples of 8
with :func:`_make_divisible` and the last conv keeps 1280 channels when
``width < 1``, so torchvision's ``mobilenet_v2(width_mult=w)`` state dicts load
strictly. ReLU6 is not in-place.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register_model
from .sizes import ImageSize, image_hw

STEMS = ("cifar", "imagenet")

#: expansion t, output channels c, repeats n, stride s (torchvision / the paper)
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """Round ``v`` to a multiple of ``divisor``, never going down by more than 10% (TF's rule)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    """``Conv2d(bias=False) -> BatchNorm2d -> ReLU6`` (torchvision's ``Conv2dNormActivation``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=False),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1, skipped when t = 1) -> depthwise 3x3 -> linear 1x1 projection [+ input]."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden_dim = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden_dim, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2.

    Args:
        num_classes: outputs of ``classifier.1``.
        in_channels: channels of the input images.
        width: torchvision's ``width_mult``.
        stem: ``"cifar"`` (stride 1 in the stem and the second stage) or ``"imagenet"``.
        dropout: dropout probability before the classifier.
        round_nearest: channel counts are multiples of this.

    Shapes: ``(B, in_channels, H, W) -> (B, num_classes)``; the last map is ``H/8``
    (CIFAR) or ``H/32`` (ImageNet) before the global average pool.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        stem: str = "cifar",
        dropout: float = 0.2,
        round_nearest: int = 8,
    ):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        input_channel = _make_divisible(32 * width, round_nearest)
        self.last_channel = _make_divisible(1280 * max(1.0, width), round_nearest)
        features: list[nn.Module] = [ConvBNReLU6(in_channels, input_channel, stride=2 if stem == "imagenet" else 1)]
        for stage, (t, c, n, s) in enumerate(INVERTED_RESIDUAL_SETTING):
            if stem == "cifar" and stage == 1:
                s = 1  # keep 32x32 inputs at 4x4 after the last stage
            output_channel = _make_divisible(c * width, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(ConvBNReLU6(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's initialisation."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)
        return self.classifier(x)


def _factory(name: str, stem: str) -> Callable[..., MobileNetV2]:
    def factory(
        num_classes: int = 10 if stem == "cifar" else 1000,
        in_channels: int = 3,
        width: float = 1.0,
        dropout: float = 0.2,
        image_size: ImageSize = 32 if stem == "cifar" else 224,
    ) -> MobileNetV2:
        image_hw(image_size)  # any size runs (padded stride-2 convolutions, global pool): only checked
        return MobileNetV2(num_classes, in_channels, width, stem, dropout)

    factory.__name__ = factory.__qualname__ = name
    return factory


register_model(
    "mobilenet_v2",
    input_shape=(3, 32, 32),
    family="mobilenet",
    description="MobileNetV2, CIFAR strides (stride-1 stem and second stage); torchvision names and shapes",
)(_factory("mobilenet_v2", "cifar"))
register_model(
    "mobilenet_v2_imagenet",
    input_shape=(3, 224, 224),
    family="mobilenet",
    description="MobileNetV2, torchvision ImageNet layout and strides",
    torchvision="mobilenet_v2",
)(_factory("mobilenet_v2_imagenet", "imagenet"))
