"""SqueezeNet 1.1 and ShuffleNetV2: stems, widths, size limits, channel shuffle."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from nnforensics.errors import ConfigError, ShapeMismatchError
from nnforensics.models.factory import create_model
from nnforensics.models.registry import build_model, get_model_spec
from nnforensics.models.shufflenet import channel_shuffle
from nnforensics.models.squeezenet import Fire


def _meta_build(arch: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return get_model_spec(arch).build(**kwargs)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _last_map_side(model: nn.Module, features: nn.Module, side: int) -> int:
    seen: list[torch.Size] = []
    handle = features.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        model(torch.randn(1, 3, side, side))
    handle.remove()
    return seen[0][-1]


def test_squeezenet_stems_and_map_sizes():
    cifar, imagenet = _meta_build("squeezenet1_1"), _meta_build("squeezenet1_1_imagenet")
    assert (cifar.features[0].stride, cifar.features[0].padding) == ((1, 1), (1, 1))
    assert (imagenet.features[0].stride, imagenet.features[0].padding) == ((2, 2), (0, 0))
    assert cifar.classifier[1].out_channels == 10 and imagenet.classifier[1].out_channels == 1000
    assert all(m.ceil_mode for m in cifar.features if isinstance(m, nn.MaxPool2d))
    assert isinstance(cifar.features[3], Fire) and cifar.features[12].expand3x3.out_channels == 256
    small = create_model("squeezenet1_1", {"width": 0.125}).model
    assert _last_map_side(small, small.features, 32) == 4
    assert _last_map_side(small, small.features, 28) == 3
    big = create_model("squeezenet1_1_imagenet", {"width": 0.125, "num_classes": 10}).model
    assert _last_map_side(big, big.features, 224) == 13  # torchvision's 13x13


def test_shufflenet_stems_and_map_sizes():
    cifar, imagenet = _meta_build("shufflenet_v2_x1_0"), _meta_build("shufflenet_v2_x1_0_imagenet")
    assert cifar.conv1[0].stride == (1, 1) and isinstance(cifar.maxpool, nn.Identity)
    assert imagenet.conv1[0].stride == (2, 2) and isinstance(imagenet.maxpool, nn.MaxPool2d)
    assert [cifar.stage2[0].branch2[5].out_channels, cifar.stage4[0].branch2[5].out_channels] == [58, 232]
    assert len(cifar.stage2[1].branch1) == 0  # stride-1 units: empty branch1, as in torchvision
    assert _meta_build("shufflenet_v2_x0_5").stage3[0].branch1[2].out_channels == 48
    small = create_model("shufflenet_v2_x0_5", {"width": 0.125}).model
    assert _last_map_side(small, small.stage4, 32) == 4
    big = create_model("shufflenet_v2_x0_5_imagenet", {"width": 0.125}).model
    assert _last_map_side(big, big.stage4, 64) == 2


@pytest.mark.parametrize("arch", ["squeezenet1_1", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0_imagenet"])
def test_width_scales_channels_and_keeps_the_names(arch):
    full, half, eighth = (_meta_build(arch, width=w, num_classes=10) for w in (1.0, 0.5, 0.125))
    assert _count(eighth) < _count(half) < _count(full)
    assert list(eighth.state_dict()) == list(full.state_dict())


@pytest.mark.parametrize("width", [0.3, 0.2, 0.07, 0.01])
def test_shufflenet_stage_channels_stay_even(width):
    model = _meta_build("shufflenet_v2_x1_0", width=width)
    for stage in (model.stage2, model.stage3, model.stage4):
        out = 2 * stage[0].branch2[5].out_channels
        assert out >= 2 and all(2 * unit.branch2[5].out_channels == out for unit in stage)
    with torch.no_grad():
        y = create_model("shufflenet_v2_x1_0", {"width": width}).model(torch.rand(2, 3, 16, 16))
    assert y.shape == (2, 10)


@pytest.mark.parametrize(("arch", "minimum"), [("squeezenet1_1", 8), ("squeezenet1_1_imagenet", 17)])
def test_squeezenet_smallest_input(arch, minimum):
    model = create_model(arch, {"width": 0.125, "num_classes": 5, "image_size": minimum}).model
    with torch.no_grad():
        assert model(torch.rand(2, 3, minimum, minimum)).shape == (2, 5)
        with pytest.raises(ShapeMismatchError, match=f"at least {minimum}x{minimum} pixels, got \\(20, {minimum - 1}\\)"):
            model(torch.rand(2, 3, 20, minimum - 1))
    with pytest.raises(ConfigError, match=f"{arch}.*at least {minimum}x{minimum} pixels, got {minimum - 1}x30"):
        build_model(arch, image_size=[minimum - 1, 30])


def test_shufflenet_takes_tiny_inputs():
    model = create_model("shufflenet_v2_x0_5_imagenet", {"width": 0.125, "num_classes": 3, "image_size": 1}).model
    with torch.no_grad():
        assert model(torch.rand(2, 3, 1, 1)).shape == (2, 3)


@pytest.mark.parametrize(("arch", "args", "message"), [
    ("squeezenet1_1", {"width": 0}, r"width must be positive"),
    ("squeezenet1_1_imagenet", {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ("shufflenet_v2_x0_5", {"width": -0.5}, r"width must be positive"),
    ("shufflenet_v2_x1_0", {"dropout": 0.1}, r"does not take argument\(s\) dropout"),
    ("shufflenet_v2_x1_0_imagenet", {"image_size": 0}, r"image_size must be a positive integer"),
])
def test_bad_arguments_raise_config_error(arch, args, message):
    with pytest.raises(ConfigError, match=message):
        build_model(arch, **args)


def test_channel_shuffle_interleaves_the_two_halves():
    x = torch.arange(8.0).reshape(1, 8, 1, 1).expand(2, 8, 3, 3)
    y = channel_shuffle(x, 2)
    assert y[0, :, 0, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert torch.equal(y[1], y[0])
