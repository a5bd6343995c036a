"""State-dict layouts equal torchvision's and RobustBench's, and their checkpoints load strictly.

The reference layouts in ``fixtures/`` were dumped from the reference implementations
(see ``fixtures/README.md``); torchvision is not installable here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nnforensics.errors import ShapeMismatchError
from nnforensics.models import load_model
from nnforensics.models.factory import create_model
from nnforensics.models.registry import get_model_spec, list_models

FIXTURES = Path(__file__).parent / "fixtures"
TORCHVISION = json.loads((FIXTURES / "torchvision_layouts.json").read_text())
ROBUSTBENCH = json.loads((FIXTURES / "robustbench_layouts.json").read_text())

#: Parameter counts published in torchvision's documentation (weights' meta "num_params").
DOCUMENTED_PARAMS = {
    "resnet18_imagenet": 11_689_512,
    "resnet34_imagenet": 21_797_672,
    "resnet50_imagenet": 25_557_032,
    "resnet101_imagenet": 44_549_160,
    "resnet152_imagenet": 60_192_808,
    "vgg11_imagenet": 132_863_336,
    "vgg11_bn_imagenet": 132_868_840,
    "vgg13_imagenet": 133_047_848,
    "vgg13_bn_imagenet": 133_053_736,
    "vgg16_imagenet": 138_357_544,
    "vgg16_bn_imagenet": 138_365_992,
    "vgg19_imagenet": 143_667_240,
    "vgg19_bn_imagenet": 143_678_248,
    "mobilenet_v2_imagenet": 3_504_872,
    "squeezenet1_1_imagenet": 1_235_496,
    "shufflenet_v2_x0_5_imagenet": 1_366_792,
    "shufflenet_v2_x1_0_imagenet": 2_278_604,
    "vit_b_16": 86_567_656,
    "vit_b_32": 88_224_232,
}

#: (our architecture, its arguments, reference layout)
EQUIVALENTS = [
    *[(name, {}, TORCHVISION[get_model_spec(name).torchvision]) for name in DOCUMENTED_PARAMS],
    ("mobilenet_v2", {"num_classes": 1000}, TORCHVISION["mobilenet_v2"]),  # CIFAR strides, same names and shapes
    ("mobilenet_v2_imagenet", {"width": 0.5, "num_classes": 10}, TORCHVISION["mobilenet_v2_w0.5_c10"]),
    ("vit_b_16", {"width": 0.125, "image_size": 32, "num_classes": 10}, TORCHVISION["vit_b_16_narrow"]),
    # small-input stems, same names and shapes
    ("squeezenet1_1", {"num_classes": 1000}, TORCHVISION["squeezenet1_1"]),
    ("shufflenet_v2_x0_5", {"num_classes": 1000}, TORCHVISION["shufflenet_v2_x0_5"]),
    ("shufflenet_v2_x1_0", {"num_classes": 1000}, TORCHVISION["shufflenet_v2_x1_0"]),
    ("wide_resnet_28_10", {}, ROBUSTBENCH["wrn_28_10"]),
    ("wide_resnet_34_10", {}, ROBUSTBENCH["wrn_34_10"]),
    ("wide_resnet_28_10", {"sub_block1": True}, ROBUSTBENCH["wrn_28_10_sub_block1"]),
    ("wide_resnet_34_10", {"sub_block1": True}, ROBUSTBENCH["wrn_34_10_sub_block1"]),
    ("preact_resnet18", {"bn_before_fc": False}, ROBUSTBENCH["preact_resnet18"]),
    ("preact_resnet18", {}, ROBUSTBENCH["preact_resnet18_bn_before_fc"]),
]


def _ids(cases):
    return [f"{arch}-{ref['source'].split('(')[0].rsplit('.', 1)[-1]}({','.join(f'{k}={v}' for k, v in args.items())})"
            for arch, args, ref in cases]


def _layout(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("arch", "args", "ref"), EQUIVALENTS, ids=_ids(EQUIVALENTS))
def test_layout_equals_reference(arch, args, ref):
    with torch.device("meta"):  # full-width models without allocating their weights
        model = get_model_spec(arch).build(**args)
    layout = _layout(model)
    assert list(layout) == list(ref["state_dict"])  # same keys, same order
    assert layout == ref["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]


@pytest.mark.parametrize("arch", sorted(DOCUMENTED_PARAMS))
def test_documented_parameter_counts(arch):
    with torch.device("meta"):
        model = get_model_spec(arch).build()
    assert sum(p.numel() for p in model.parameters()) == DOCUMENTED_PARAMS[arch]


def test_registry_names_torchvision_equivalents():
    named = {s.name: s.torchvision for s in list_models() if s.torchvision}
    assert set(named) == set(DOCUMENTED_PARAMS)
    for arch, tv_name in named.items():
        assert tv_name in TORCHVISION
        assert arch in (tv_name, f"{tv_name}_imagenet")
        assert get_model_spec(arch).description


def _fake_checkpoint(layout: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Tensors of the reference shapes, each filled with its own value so misplacements show."""
    return {
        k: torch.tensor(i, dtype=torch.long) if k.endswith("num_batches_tracked") else torch.full(shape, (i % 251) / 251.0)
        for i, (k, shape) in enumerate(layout.items())
    }


STRICT_LOADS = [
    ("resnet18_imagenet", {}, TORCHVISION["resnet18"]),
    ("resnet50_imagenet", {}, TORCHVISION["resnet50"]),
    # (full VGG files are 0.5 GB; their layouts are checked above, narrow VGGs round-trip below)
    ("mobilenet_v2_imagenet", {}, TORCHVISION["mobilenet_v2"]),
    ("mobilenet_v2_imagenet", {"width": 0.5}, TORCHVISION["mobilenet_v2_w0.5_c10"]),
    ("vit_b_16", {"width": 0.125, "image_size": 32}, TORCHVISION["vit_b_16_narrow"]),
    ("squeezenet1_1_imagenet", {}, TORCHVISION["squeezenet1_1"]),
    ("squeezenet1_1", {}, TORCHVISION["squeezenet1_1"]),
    ("shufflenet_v2_x0_5_imagenet", {}, TORCHVISION["shufflenet_v2_x0_5"]),
    ("shufflenet_v2_x1_0_imagenet", {}, TORCHVISION["shufflenet_v2_x1_0"]),
    ("shufflenet_v2_x1_0", {}, TORCHVISION["shufflenet_v2_x1_0"]),
    ("wide_resnet_28_10", {}, ROBUSTBENCH["wrn_28_10"]),
    ("wide_resnet_28_10", {"sub_block1": True}, ROBUSTBENCH["wrn_28_10_sub_block1"]),
    ("preact_resnet18", {"bn_before_fc": False}, ROBUSTBENCH["preact_resnet18"]),
    ("preact_resnet18", {}, ROBUSTBENCH["preact_resnet18_bn_before_fc"]),
]


@pytest.mark.parametrize(("arch", "args", "ref"), STRICT_LOADS, ids=_ids(STRICT_LOADS))
def test_reference_checkpoint_loads_strictly(arch, args, ref, tmp_path):
    """A plain ``.pt`` state dict with the reference's names and shapes loads with ``--arch``."""
    tensors = _fake_checkpoint(ref["state_dict"])
    path = tmp_path / "reference.pt"
    torch.save(tensors, path)
    loaded = load_model(path, arch=arch, arch_args=args)
    got = loaded.model.state_dict()
    assert list(got) == list(tensors)
    assert all(torch.equal(got[k], v) for k, v in tensors.items())
    assert loaded.meta.num_classes == tensors[list(tensors)[-1]].shape[0]  # inferred from the last bias


TORCH_SAVE_ROUND_TRIPS = [
    *[(name, {"width": 0.125, "num_classes": 10}) for name in DOCUMENTED_PARAMS if not name.startswith("vit")],
    ("vit_b_16", {"width": 0.125, "num_classes": 10, "image_size": 32}),
    ("vit_b_32", {"width": 0.125, "num_classes": 10, "image_size": 32}),
    ("mobilenet_v2", {"width": 0.125}),
    ("squeezenet1_1", {"width": 0.125}),
    ("shufflenet_v2_x0_5", {"width": 0.125}),
    ("wide_resnet_28_10", {"width": 0.125, "sub_block1": True}),
    ("preact_resnet18", {"width": 0.125, "bn_before_fc": False, "preact_shortcut": False}),
]


@pytest.mark.parametrize(("arch", "args"), TORCH_SAVE_ROUND_TRIPS, ids=[a for a, _ in TORCH_SAVE_ROUND_TRIPS])
def test_plain_state_dict_round_trip(arch, args, tmp_path):
    """Our state dict (= the reference's names) saved with torch.save reloads strictly, same outputs."""
    source = create_model(arch, args, seed=4).model
    path = tmp_path / "plain.pt"
    torch.save(source.state_dict(), path)
    loaded = load_model(path, arch=arch, arch_args={k: v for k, v in args.items() if k != "num_classes"})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), source(x))


def test_strict_loading_names_the_missing_and_unexpected_keys(tmp_path):
    tensors = _fake_checkpoint(TORCHVISION["resnet18"]["state_dict"])
    tensors["fc.weights"] = tensors.pop("fc.weight")
    path = tmp_path / "bad.pt"
    torch.save(tensors, path)
    with pytest.raises(ShapeMismatchError, match=r"missing keys: fc\.weight.*unexpected keys: fc\.weights"):
        load_model(path, arch="resnet18_imagenet")
    with pytest.raises(ShapeMismatchError, match=r"conv1\.weight file \(64, 3, 7, 7\) vs model \(64, 3, 3, 3\)"):
        load_model(tmp_path / "bad.pt", arch="resnet18")


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_imagenet"])
def test_paper_target_layer_of_vgg16(arch):
    """Find the Lady permutes ``features.17`` (Conv 256->512), next layer ``features.19``."""
    with torch.device("meta"):
        modules = dict(get_model_spec(arch).build().named_modules())
    target, following = modules["features.17"], modules["features.19"]
    assert isinstance(target, torch.nn.Conv2d) and (target.in_channels, target.out_channels) == (256, 512)
    assert isinstance(following, torch.nn.Conv2d) and (following.in_channels, following.out_channels) == (512, 512)
