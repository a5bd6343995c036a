"""Every built-in architecture: builds, runs, saves and loads bit for bit, traces with make_fx."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.fx.experimental.proxy_tensor import make_fx

from nnforensics.cli import main
from nnforensics.data.registry import DatasetInfo
from nnforensics.io.modelfile import save_model
from nnforensics.models import load_model
from nnforensics.models.factory import create_model
from nnforensics.models.registry import get_model_spec, list_models

VGG = [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
RESNET = [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
SMALL_CNNS = ["mobilenet_v2", "squeezenet1_1", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0"]
CIFAR_ARCHS = VGG + RESNET + ["preact_resnet18", "wide_resnet_28_10", "wide_resnet_34_10", *SMALL_CNNS, "vit_tiny"]
IMAGENET_ARCHS = [f"{name}_imagenet" for name in VGG + RESNET + SMALL_CNNS] + ["vit_b_16", "vit_b_32"]
ZOO_FAMILIES = {"vgg", "resnet", "preact_resnet", "wide_resnet", "mobilenet", "squeezenet", "shufflenet", "vit"}


def narrow_args(arch: str) -> dict:
    """Small, fast constructor arguments: 1/8 width, 10 classes, 32x32 ViT inputs."""
    args: dict = {"width": 0.125, "num_classes": 10}
    if arch.startswith("vit_b"):
        args["image_size"] = 32
    return args


def test_every_zoo_architecture_is_tested():
    registered = {s.name for s in list_models() if s.family in ZOO_FAMILIES}
    assert registered == set(CIFAR_ARCHS + IMAGENET_ARCHS)


def _input(arch: str, shape: list[int], batch: int = 2, seed: int = 1) -> torch.Tensor:
    if shape[-1] == 224 and not arch.startswith("vit"):
        shape = [shape[0], 32, 32]  # ImageNet CNNs run on small images too; keep the tests fast
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", CIFAR_ARCHS + IMAGENET_ARCHS)
def test_forward_save_load_bit_for_bit(arch, tmp_path):
    loaded = create_model(arch, narrow_args(arch), seed=3)
    model = loaded.model
    assert not model.training
    x = _input(arch, loaded.meta.input_shape)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 10)
    assert torch.isfinite(y).all() and y.abs().sum() > 0
    # eval mode is deterministic, and gradient mode does not change the numbers
    assert torch.equal(model(x).detach(), y)
    with torch.no_grad():
        assert torch.equal(model(x), y)

    path = save_model(model, tmp_path / f"{arch}.safetensors", loaded.meta)
    again = load_model(path)
    assert again.meta.arch == arch and again.meta.arch_args == loaded.meta.arch_args
    assert not again.model.training
    with torch.no_grad():
        assert torch.equal(again.model(x), y)
    ref = model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in again.model.state_dict().items())


# The deep ImageNet ResNets repeat the blocks of their CIFAR twins (traced) behind the stem of
# resnet18_imagenet (traced): skipping them saves ~10 s.
TRACED = [a for a in CIFAR_ARCHS + IMAGENET_ARCHS if a not in ("resnet101_imagenet", "resnet152_imagenet")]


@pytest.mark.parametrize("arch", TRACED)
def test_traceable_with_make_fx(arch):
    """No data-dependent Python control flow: make_fx over functional_call replays the model."""
    model = create_model(arch, narrow_args(arch), seed=0).model
    x = _input(arch, list(get_model_spec(arch).input_shape) if not arch.startswith("vit_b") else [3, 32, 32])
    params, buffers = dict(model.named_parameters()), dict(model.named_buffers())

    def run(p, b, inp):
        return torch.func.functional_call(model, (p, b), (inp,))

    graph = make_fx(run)(params, buffers, x)
    assert torch.equal(graph(params, buffers, x), model(x))


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = (create_model("resnet18", {"width": 0.125}, seed=s).model.state_dict() for s in (5, 5, 6))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


@pytest.mark.parametrize("arch", CIFAR_ARCHS + IMAGENET_ARCHS)
def test_no_inplace_activations(arch):
    with torch.device("meta"):
        model = get_model_spec(arch).build(**narrow_args(arch))
    inplace = [name for name, m in model.named_modules() if getattr(m, "inplace", False)]
    assert not inplace


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn", "resnet18", "preact_resnet18", "wide_resnet_28_10",
                                  "mobilenet_v2", "squeezenet1_1", "shufflenet_v2_x0_5", "vit_tiny"])
def test_cifar_variants_take_mnist_sized_inputs(arch):
    """28x28 single-channel images (ceil-mode pools in VGG; image_size from the dataset for the ViT)."""
    mnist_like = DatasetInfo("mnist-like", 10, (1, 28, 28), None, None)
    loaded = create_model(arch, {"width": 0.125}, data=mnist_like)
    assert loaded.meta.input_shape == [1, 28, 28]
    with torch.no_grad():
        y = loaded.model(torch.rand(3, 1, 28, 28))
    assert y.shape == (3, 10) and torch.isfinite(y).all()


@pytest.mark.parametrize("arch", ["vgg16_bn", "resnet18", "wide_resnet_28_10", "mobilenet_v2", "squeezenet1_1",
                                  "shufflenet_v2_x0_5", "vit_tiny"])
def test_trains_every_parameter(arch):
    """One backward pass in training mode reaches every parameter."""
    model = create_model(arch, {"width": 0.125}, seed=0).model.train()
    x = torch.randn(4, 3, 32, 32)
    nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize("arch", ["vgg16", "resnet18_imagenet", "preact_resnet18", "wide_resnet_28_10",
                                  "mobilenet_v2", "vit_tiny"])
def test_cli_init_then_load(arch, tmp_path, capsys):
    path = tmp_path / "model.safetensors"
    code = main(["init", "--arch", arch, "--arch-arg", "width=0.125", "--seed", "2", "-o", str(path)])
    assert code == 0, capsys.readouterr().err
    loaded = load_model(path)
    assert loaded.meta.arch == arch and loaded.meta.arch_args["width"] == 0.125
    fresh = create_model(arch, {"width": 0.125}, seed=2)
    x = _input(arch, loaded.meta.input_shape)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), fresh.model(x))


def test_cli_unknown_architecture_fails_with_the_valid_names(tmp_path, capsys):
    code = main(["init", "--arch", "resnet19", "-o", str(tmp_path / "m.safetensors")])
    assert code != 0
    err = capsys.readouterr().err
    assert "resnet19" in err and "resnet18" in err and "vgg16_imagenet" in err
    assert not (tmp_path / "m.safetensors").exists()
