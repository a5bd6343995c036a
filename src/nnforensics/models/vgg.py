"""VGG-11/13/16/19, with and without BatchNorm, for CIFAR-sized and ImageNet inputs.

Naming scheme (shared by every convolutional family in the zoo):

* ``vgg16`` (and ``vgg11``, ``vgg13``, ``vgg19``, ``*_bn``): the CIFAR variant, for
  small inputs (default ``3x32x32``; 28x28 MNIST works too). ``features`` is
  torchvision's, but its max-pools use ``ceil_mode=True`` (28 -> 14 -> 7 -> 4 -> 2 -> 1),
  followed by a global average pool and ``classifier = Linear(512*width, num_classes)``.
* ``vgg16_imagenet`` (...): torchvision's layout exactly: ``features.N``,
  ``avgpool = AdaptiveAvgPool2d((7, 7))``, ``classifier.0/3/6`` with ReLU and dropout
  between them; a torchvision state dict loads into it strictly. Inputs of at least
  32x32 pixels (checked when building, from ``image_size``).

The paper's target layer ``features.17`` of VGG-16 without BatchNorm (Conv 256->512)
has that name in both variants. ReLUs are not in-place, so the activations a hook
records do not depend on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from ..errors import ShapeMismatchError
from .lenet import _scaled
from .registry import register_model
from .sizes import ImageSize, image_hw, require_side

#: torchvision's configurations: channel counts, ``"M"`` for a 2x2 max-pool.
CFGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

CLASSIFIERS = ("cifar", "imagenet")
#: Five stride-2 pools without ceil mode need at least 32 pixels per side.
MIN_IMAGENET_SIDE = 32


def make_features(cfg: Sequence[int | str], in_channels: int, width: float, batch_norm: bool, ceil_mode: bool) -> nn.Sequential:
    """torchvision's ``make_layers``: ``Conv3x3 [BN] ReLU`` per number, ``MaxPool2d(2)`` per ``"M"``."""
    layers: list[nn.Module] = []
    channels = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode))
            continue
        out = _scaled(int(v), width)
        layers.append(nn.Conv2d(channels, out, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=False))
        channels = out
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG network: ``features -> pool -> classifier``.

    Args:
        cfg: channel counts and ``"M"`` pools (see :data:`CFGS`).
        num_classes: outputs of the last layer.
        in_channels: channels of the input images.
        width: channel multiplier (0.125 gives a narrow test network).
        batch_norm: BatchNorm after every convolution.
        classifier: ``"cifar"`` (global pool + one Linear) or ``"imagenet"``
            (torchvision: 7x7 adaptive pool + three Linear layers with dropout).
        dropout: dropout probability of the ImageNet classifier.
        image_size: the input images' side or ``(H, W)``; the ImageNet variant needs
            at least 32 pixels per side (the CIFAR variant's ceil-mode pools take any size).

    Shapes: ``(B, in_channels, H, W) -> (B, num_classes)``.
    """

    def __init__(
        self,
        cfg: Sequence[int | str],
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        batch_norm: bool = False,
        classifier: str = "cifar",
        dropout: float = 0.5,
        image_size: ImageSize = 32,
    ):
        super().__init__()
        if classifier == "imagenet":
            require_side("the ImageNet VGG (use the CIFAR variant, e.g. vgg16, for small images)", image_size,
                         MIN_IMAGENET_SIDE)
        else:
            image_hw(image_size)
        if classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}, got {classifier!r}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.classifier_kind = classifier
        self.features = make_features(cfg, in_channels, width, batch_norm, ceil_mode=classifier == "cifar")
        channels = _scaled(512, width)
        if classifier == "cifar":
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.classifier: nn.Module = nn.Linear(channels, num_classes)
        else:
            hidden = _scaled(4096, width)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(channels * 7 * 7, hidden),
                nn.ReLU(inplace=False),
                nn.Dropout(dropout),
                nn.Linear(hidden, hidden),
                nn.ReLU(inplace=False),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's initialisation."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.classifier_kind == "imagenet" and min(x.shape[-2:]) < MIN_IMAGENET_SIDE:
            raise ShapeMismatchError(
                f"the ImageNet VGG needs inputs of at least {MIN_IMAGENET_SIDE}x{MIN_IMAGENET_SIDE} pixels, "
                f"got {tuple(x.shape[-2:])}; use the CIFAR variant (e.g. vgg16) for small images"
            )
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def _cifar_factory(name: str, depth: int, batch_norm: bool) -> Callable[..., VGG]:
    def factory(num_classes: int = 10, in_channels: int = 3, width: float = 1.0, image_size: ImageSize = 32) -> VGG:
        return VGG(CFGS[depth], num_classes, in_channels, width, batch_norm, "cifar", image_size=image_size)

    factory.__name__ = factory.__qualname__ = name
    return factory


def _imagenet_factory(name: str, depth: int, batch_norm: bool) -> Callable[..., VGG]:
    def factory(num_classes: int = 1000, in_channels: int = 3, width: float = 1.0, dropout: float = 0.5,
                image_size: ImageSize = 224) -> VGG:
        return VGG(CFGS[depth], num_classes, in_channels, width, batch_norm, "imagenet", dropout, image_size)

    factory.__name__ = factory.__qualname__ = name
    return factory


def _register_all() -> None:
    for depth in CFGS:
        for batch_norm in (False, True):
            base = f"vgg{depth}{'_bn' if batch_norm else ''}"
            bn_text = " with BatchNorm" if batch_norm else ""
            register_model(
                base,
                input_shape=(3, 32, 32),
                family="vgg",
                description=f"VGG-{depth}{bn_text}, CIFAR variant (global pool + Linear)",
            )(_cifar_factory(base, depth, batch_norm))
            register_model(
                f"{base}_imagenet",
                input_shape=(3, 224, 224),
                family="vgg",
                description=f"VGG-{depth}{bn_text}, torchvision ImageNet layout (7x7 pool, 3 Linear layers)",
                torchvision=base,
            )(_imagenet_factory(f"{base}_imagenet", depth, batch_norm))


_register_all()
