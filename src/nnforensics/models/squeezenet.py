"""SqueezeNet 1.1 with torchvision's module names and shapes.

Names: ``features.0`` (stem conv), Fire modules ``features.N.squeeze`` /
``features.N.expand1x1`` / ``features.N.expand3x3`` (N = 3, 4, 6, 7, 9, 10, 11, 12; the
expand outputs are concatenated), ``classifier.1`` (1x1 conv to the classes, after
dropout, followed by a ReLU and a global average pool). Both variants have
torchvision's names *and shapes*; they differ only in the stem's stride and padding:

* ``squeezenet1_1``: small-input variant (default ``3x32x32``): a stride-1, padded 3x3
  stem, so the three ceil-mode max-pools take 32 -> 16 -> 8 -> 4 (28 -> 3, 64 -> 8);
  inputs of at least 8x8 pixels.
* ``squeezenet1_1_imagenet``: torchvision's network exactly (stride-2 unpadded stem,
  224 -> 13); inputs of at least 17x17 pixels (torchvision's documented minimum).

``width`` scales every channel count (the class count excepted). ReLUs are not in-place.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from ..errors import ShapeMismatchError
from .lenet import _scaled
from .registry import register_model
from .sizes import ImageSize, require_side

STEMS = ("cifar", "imagenet")
#: Smallest side the stem and the three ceil-mode 3x3/2 max-pools accept (checked in tests).
MIN_SIDE = {"cifar": 8, "imagenet": 17}
#: SqueezeNet 1.1's Fire modules: (squeeze, expand1x1 = expand3x3) channels; "M" is a max-pool.
FIRES_1_1: tuple[tuple[int, int] | str, ...] = (
    "M", (16, 64), (16, 64), "M", (32, 128), (32, 128), "M", (48, 192), (48, 192), (64, 256), (64, 256),
)


class Fire(nn.Module):
    """1x1 squeeze -> ReLU -> [1x1 expand, 3x3 expand] -> ReLU each -> concatenated channels.

    Shapes: ``(B, inplanes, H, W) -> (B, expand1x1_planes + expand3x3_planes, H, W)``.
    """

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int, expand3x3_planes: int):
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=False)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=False)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


def _features(in_channels: int, width: float, stem: str) -> tuple[nn.Sequential, int]:
    """torchvision's ``features`` for version 1_1 (stem per ``stem``) and its output channels."""
    channels = _scaled(64, width)
    if stem == "imagenet":
        conv = nn.Conv2d(in_channels, channels, kernel_size=3, stride=2)
    else:
        conv = nn.Conv2d(in_channels, channels, kernel_size=3, stride=1, padding=1)
    layers: list[nn.Module] = [conv, nn.ReLU(inplace=False)]
    for item in FIRES_1_1:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
            continue
        squeeze, expand = _scaled(item[0], width), _scaled(item[1], width)
        layers.append(Fire(channels, squeeze, expand, expand))
        channels = 2 * expand
    return nn.Sequential(*layers), channels


class SqueezeNet(nn.Module):
    """SqueezeNet 1.1.

    Args:
        num_classes: outputs of ``classifier.1``.
        in_channels: channels of the input images.
        width: channel multiplier (0.125 gives a narrow test network).
        stem: ``"cifar"`` (stride-1 padded stem) or ``"imagenet"`` (torchvision's stride-2 stem).
        dropout: dropout probability before the classifier convolution.

    Shapes: ``(B, in_channels, H, W) -> (B, num_classes)``; the last map is ``~H/8``
    (CIFAR stem) or ``~H/16`` (ImageNet stem) before the global pool.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0, stem: str = "cifar",
                 dropout: float = 0.5):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.num_classes = num_classes
        self.stem = stem
        self.features, channels = _features(in_channels, width, stem)
        final_conv = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=False),
                                        nn.AdaptiveAvgPool2d((1, 1)))
        self._init_weights(final_conv)

    def _init_weights(self, final_conv: nn.Conv2d) -> None:
        """torchvision's initialisation (the classifier conv is drawn with a small std)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        minimum = MIN_SIDE[self.stem]
        if min(x.shape[-2:]) < minimum:  # max-pool's own error does not say what size is needed
            raise ShapeMismatchError(f"this SqueezeNet needs inputs of at least {minimum}x{minimum} pixels, "
                                     f"got {tuple(x.shape[-2:])}")
        x = self.classifier(self.features(x))
        return torch.flatten(x, 1)


def _factory(name: str, stem: str) -> Callable[..., SqueezeNet]:
    def factory(
        num_classes: int = 10 if stem == "cifar" else 1000,
        in_channels: int = 3,
        width: float = 1.0,
        dropout: float = 0.5,
        image_size: ImageSize = 32 if stem == "cifar" else 224,
    ) -> SqueezeNet:
        hint = " (use squeezenet1_1 for small images)" if stem == "imagenet" else ""
        require_side(f"{name}{hint}", image_size, MIN_SIDE[stem])
        return SqueezeNet(num_classes, in_channels, width, stem, dropout)

    factory.__name__ = factory.__qualname__ = name
    return factory


register_model(
    "squeezenet1_1",
    input_shape=(3, 32, 32),
    family="squeezenet",
    description="SqueezeNet 1.1, small-input stem (stride-1 padded 3x3 conv); torchvision names and shapes",
)(_factory("squeezenet1_1", "cifar"))
register_model(
    "squeezenet1_1_imagenet",
    input_shape=(3, 224, 224),
    family="squeezenet",
    description="SqueezeNet 1.1, torchvision ImageNet layout and strides (inputs of at least 17x17)",
    torchvision="squeezenet1_1",
)(_factory("squeezenet1_1_imagenet", "imagenet"))
