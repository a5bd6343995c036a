"""ShuffleNetV2 (0.5x and 1.0x) with torchvision's module names and shapes.

Names: ``conv1.0`` / ``conv1.1`` (stem conv + BN), ``maxpool``, units
``stageS.N.branch1.{0,1,2,3}`` (stride-2 units only: depthwise 3x3 + BN, 1x1 + BN) and
``stageS.N.branch2.{0,1,3,4,5,6}`` (1x1 + BN, depthwise 3x3 + BN, 1x1 + BN),
``conv5.0`` / ``conv5.1`` and ``fc``. A stride-1 unit splits its input in two halves
(``chunk``), transforms the second and concatenates; every unit ends with a channel
shuffle of two groups (view / transpose / view). Both variants have torchvision's names
*and shapes*; they differ only in the stem:

* ``shufflenet_v2_x0_5`` / ``shufflenet_v2_x1_0``: small-input variant (default
  ``3x32x32``): stride-1 ``conv1`` and no max-pool (``maxpool`` is an ``nn.Identity``),
  so 32x32 images end as 4x4 maps (kuangliu's CIFAR adaptation).
* ``*_imagenet``: torchvision's network exactly (stride-2 ``conv1`` + 3x3/2 max-pool,
  32x downsampling); a torchvision state dict loads into it strictly.

Padded convolutions and a global mean: any image size runs. ``width`` scales every
channel count (stage channels stay even, as the split into halves needs). torchvision
keeps PyTorch's default initialisation; so does this module. ReLUs are not in-place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from .lenet import _scaled
from .registry import register_model
from .sizes import ImageSize, image_hw

STEMS = ("cifar", "imagenet")
STAGES_REPEATS = (4, 8, 4)
#: torchvision's ``stages_out_channels`` (conv1, stage2, stage3, stage4, conv5) per model.
STAGES_OUT_CHANNELS: dict[str, tuple[int, int, int, int, int]] = {
    "x0_5": (24, 48, 96, 192, 1024),
    "x1_0": (24, 116, 232, 464, 1024),
}


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` channel groups: ``(B, C, H, W) -> (B, C, H, W)``, channel ``g*k + i -> i*groups + g``."""
    batchsize, num_channels, height, width = x.size()
    x = x.view(batchsize, groups, num_channels // groups, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, -1, height, width)


def _depthwise(channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, stride, 1, bias=False, groups=channels)


class InvertedResidual(nn.Module):
    """A ShuffleNetV2 unit.

    Stride 1: ``x -> cat(x[:C/2], branch2(x[C/2:])) -> shuffle``; stride 2:
    ``x -> cat(branch1(x), branch2(x)) -> shuffle``. Shapes: ``(B, inp, H, W) ->
    (B, oup, H/stride, W/stride)``.
    """

    def __init__(self, inp: int, oup: int, stride: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.stride = stride
        branch_features = oup // 2
        if stride == 1 and inp != branch_features << 1:
            raise ValueError(f"a stride-1 unit needs inp == 2 * (oup // 2), got inp {inp} and oup {oup}")
        if stride > 1:
            self.branch1 = nn.Sequential(
                _depthwise(inp, stride),
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch_features, 1, 1, 0, bias=False),
                nn.BatchNorm2d(branch_features),
                nn.ReLU(inplace=False),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch_features, branch_features, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=False),
            _depthwise(branch_features, stride),
            nn.BatchNorm2d(branch_features),
            nn.Conv2d(branch_features, branch_features, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


def _even(channels: int, width: float) -> int:
    """``channels * width`` rounded to an even count (at least 2): stride-1 units split channels in halves."""
    return max(2, 2 * int(round(channels * width / 2)))


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2.

    Args:
        stages_out_channels: torchvision's 5 channel counts (conv1, stages 2-4, conv5).
        num_classes: outputs of ``fc``.
        in_channels: channels of the input images.
        width: channel multiplier applied on top of ``stages_out_channels``.
        stem: ``"cifar"`` (stride-1 ``conv1``, no max-pool) or ``"imagenet"``.
        stages_repeats: units per stage.

    Shapes: ``(B, in_channels, H, W) -> (B, num_classes)``; the last map is ``H/8``
    (CIFAR stem) or ``H/32`` (ImageNet stem) before the global mean.
    """

    def __init__(self, stages_out_channels: Sequence[int], num_classes: int = 10, in_channels: int = 3,
                 width: float = 1.0, stem: str = "cifar", stages_repeats: Sequence[int] = STAGES_REPEATS):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if len(stages_repeats) != 3 or len(stages_out_channels) != 5:
            raise ValueError("expected 3 stage repeats and 5 stage channel counts")
        first, *stages, last = stages_out_channels
        channels = _scaled(first, width)
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, 2 if stem == "imagenet" else 1, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=False),
        )
        self.maxpool: nn.Module = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        self.stage2: nn.Sequential
        self.stage3: nn.Sequential
        self.stage4: nn.Sequential
        for name, repeats, out in zip(("stage2", "stage3", "stage4"), stages_repeats, stages):
            out = _even(out, width)
            units = [InvertedResidual(channels, out, 2)] + [InvertedResidual(out, out, 1) for _ in range(repeats - 1)]
            setattr(self, name, nn.Sequential(*units))
            channels = out
        last = _scaled(last, width)
        self.conv5 = nn.Sequential(nn.Conv2d(channels, last, 1, 1, 0, bias=False), nn.BatchNorm2d(last),
                                   nn.ReLU(inplace=False))
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        x = self.conv5(x).mean([2, 3])  # global pool
        return self.fc(x)


def _factory(name: str, size: str, stem: str) -> Callable[..., ShuffleNetV2]:
    def factory(num_classes: int = 10 if stem == "cifar" else 1000, in_channels: int = 3, width: float = 1.0,
                image_size: ImageSize = 32 if stem == "cifar" else 224) -> ShuffleNetV2:
        image_hw(image_size)  # any size runs (padded convolutions, global mean): only checked
        return ShuffleNetV2(STAGES_OUT_CHANNELS[size], num_classes, in_channels, width, stem)

    factory.__name__ = factory.__qualname__ = name
    return factory


def _register_all() -> None:
    for size, label in (("x0_5", "0.5x"), ("x1_0", "1.0x")):
        name = f"shufflenet_v2_{size}"
        register_model(
            name,
            input_shape=(3, 32, 32),
            family="shufflenet",
            description=f"ShuffleNetV2 {label}, small-input stem (stride-1 conv1, no max-pool); torchvision names",
        )(_factory(name, size, "cifar"))
        register_model(
            f"{name}_imagenet",
            input_shape=(3, 224, 224),
            family="shufflenet",
            description=f"ShuffleNetV2 {label}, torchvision ImageNet layout and strides",
            torchvision=name,
        )(_factory(f"{name}_imagenet", size, "imagenet"))


_register_all()
