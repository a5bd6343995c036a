"""Constructor arguments: width, CIFAR vs ImageNet variants, and clear errors for bad ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from nnforensics.errors import ConfigError, ShapeMismatchError, UnknownNameError
from nnforensics.models.factory import create_model
from nnforensics.models.registry import build_model, get_model_spec


def _meta_build(arch: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return get_model_spec(arch).build(**kwargs)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn_imagenet", "resnet18", "resnet50_imagenet", "preact_resnet18",
                                  "wide_resnet_28_10", "mobilenet_v2", "vit_tiny", "vit_b_16"])
def test_width_scales_the_parameter_count(arch):
    full, half, eighth = (_count(_meta_build(arch, width=w, num_classes=10)) for w in (1.0, 0.5, 0.125))
    assert eighth < half < full
    if not arch.startswith("mobilenet"):  # MobileNet keeps its 1280-channel head below width 1 (torchvision)
        assert half < 0.35 * full  # roughly quadratic in the width
        assert eighth < 0.05 * full


def test_width_rounds_channels_sensibly():
    resnet = _meta_build("resnet18", width=0.125)
    assert resnet.conv1.out_channels == 8 and resnet.fc.in_features == 64
    vgg = _meta_build("vgg16", width=0.125)
    assert vgg.features[17].out_channels == 64 and vgg.classifier.in_features == 64
    wrn = _meta_build("wide_resnet_28_10", width=0.125)
    assert wrn.conv1.out_channels == 2 and wrn.fc.in_features == 80
    # MobileNet channels stay multiples of 8 (torchvision's _make_divisible)
    mobile = _meta_build("mobilenet_v2", width=0.3)
    convs = [m for m in mobile.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 for c in convs)
    # ViT: the heads keep dividing the scaled dimension
    for arch, width, heads in (("vit_tiny", 0.125, 3), ("vit_b_16", 0.1, 12), ("vit_tiny", 0.01, 3)):
        vit = _meta_build(arch, width=width)
        dim = vit.conv_proj.out_channels
        assert dim % heads == 0 and dim >= heads
        assert vit.encoder.layers.encoder_layer_0.self_attention.num_heads == heads


def test_resnet_stems():
    cifar, imagenet = _meta_build("resnet18"), _meta_build("resnet18_imagenet")
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, nn.Identity)
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert isinstance(imagenet.maxpool, nn.MaxPool2d)
    assert cifar.fc.out_features == 10 and imagenet.fc.out_features == 1000  # default classes
    assert _meta_build("resnet50").fc.in_features == 2048


def _layer4_side(arch: str, side: int) -> int:
    model = create_model(arch, {"width": 0.125}).model
    seen: dict[str, torch.Size] = {}

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        seen["shape"] = output.shape

    model.layer4.register_forward_hook(record)
    with torch.no_grad():
        model(torch.randn(1, 3, side, side))
    return seen["shape"][-1]


def test_resnet_feature_map_sizes():
    assert _layer4_side("resnet18", 32) == 4  # /8
    assert _layer4_side("resnet18_imagenet", 64) == 2  # /32


def test_vgg_classifiers():
    cifar, imagenet = _meta_build("vgg16"), _meta_build("vgg16_imagenet")
    assert isinstance(cifar.classifier, nn.Linear) and cifar.classifier.in_features == 512
    assert cifar.avgpool.output_size in ((1, 1), 1)
    assert all(m.ceil_mode for m in cifar.features if isinstance(m, nn.MaxPool2d))
    assert imagenet.avgpool.output_size == (7, 7)
    head = imagenet.classifier
    assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Dropout] * 2 + [nn.Linear]
    assert (head[0].in_features, head[0].out_features, head[6].out_features) == (25088, 4096, 1000)
    assert not any(m.ceil_mode for m in imagenet.features if isinstance(m, nn.MaxPool2d))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in cifar.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in _meta_build("vgg16_bn").modules()) == 13


def test_mobilenet_strides():
    cifar, imagenet = _meta_build("mobilenet_v2"), _meta_build("mobilenet_v2_imagenet")
    assert cifar.features[0][0].stride == (1, 1) and imagenet.features[0][0].stride == (2, 2)
    assert cifar.features[2].conv[1][0].stride == (1, 1) and imagenet.features[2].conv[1][0].stride == (2, 2)
    with torch.no_grad():
        feats = create_model("mobilenet_v2", {"width": 0.25}).model.features(torch.randn(1, 3, 32, 32))
    assert feats.shape[-1] == 4


def test_vit_sequence_follows_image_and_patch_size():
    vit = _meta_build("vit_tiny", image_size=28, patch_size=7)
    assert vit.encoder.pos_embedding.shape == (1, 17, 192)
    assert isinstance(vit.encoder.layers.encoder_layer_0.self_attention, nn.MultiheadAttention)
    assert vit.encoder.layers.encoder_layer_0.self_attention.batch_first
    assert _meta_build("vit_b_32").encoder.pos_embedding.shape == (1, 50, 768)


def test_dropout_arguments_only_act_in_training():
    model = create_model("vgg16_imagenet", {"width": 0.125, "num_classes": 10, "dropout": 0.5}).model
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    assert not torch.equal(a, model(x))


@pytest.mark.parametrize(("arch", "args", "message"), [
    ("resnet18", {"stem": "imagenet"}, r"does not take argument\(s\) stem.*num_classes, in_channels, width"),
    ("vgg16", {"classifier": "imagenet"}, r"does not take argument\(s\) classifier"),
    ("vgg16", {"dropout": 0.5}, r"does not take argument\(s\) dropout"),
    ("wide_resnet_28_10", {"depth": 40}, r"does not take argument\(s\) depth"),
    ("vit_b_16", {"patch_size": 8}, r"does not take argument\(s\) patch_size"),
    ("resnet18", {"width": 0}, r"width must be positive"),
    ("vgg16_imagenet", {"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
    ("wide_resnet_34_10", {"drop_rate": -0.1}, r"drop_rate must be in \[0, 1\)"),
    ("mobilenet_v2", {"width": -1.0}, r"width must be positive"),
    ("vit_tiny", {"image_size": [32, 0]}, r"image_size must be a positive integer or a pair"),
    ("lenet", {"image_size": [8, 30]}, r"lenet needs images of at least 12x12 pixels, got 8x30"),
    ("vgg16_imagenet", {"image_size": 28}, r"ImageNet VGG .*at least 32x32 pixels, got 28x28"),
    ("vit_tiny", {"num_heads": 5}, r"num_heads 5 does not divide hidden_dim 192"),
    ("vit_tiny", {"num_layers": 0}, r"num_layers must be a positive integer"),
])
def test_bad_arguments_raise_config_error(arch, args, message):
    with pytest.raises(ConfigError, match=message):
        build_model(arch, **args)
    with pytest.raises(ConfigError, match=message):
        create_model(arch, args)


def test_unknown_architecture_lists_the_valid_names():
    with pytest.raises(UnknownNameError) as info:
        build_model("resnet19")
    text = str(info.value)
    assert "unknown architecture 'resnet19'" in text
    for name in ("resnet18", "resnet18_imagenet", "vgg16", "vgg16_bn_imagenet", "wide_resnet_28_10", "vit_tiny"):
        assert name in info.value.valid


@pytest.mark.parametrize(("arch", "args", "shape", "message"), [
    ("vit_tiny", {"width": 0.125}, (1, 3, 28, 28), r"built for 32x32 images, got 28x28"),
    ("vgg16_imagenet", {"width": 0.125}, (1, 3, 28, 28), r"at least 32x32 pixels.*use the CIFAR variant"),
])
def test_wrong_input_size_is_a_clear_error(arch, args, shape, message):
    model = create_model(arch, args).model
    with pytest.raises(ShapeMismatchError, match=message):
        model(torch.randn(*shape))
