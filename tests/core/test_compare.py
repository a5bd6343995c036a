"""compare(): verdicts, similarity and kinds of modification, on models trained on real MNIST
and on a real pretrained network (MTCNN's ONet)."""

from __future__ import annotations

import copy

import pytest
import torch

from nnforensics.integrity import compare
from nnforensics.permutation import permute
from nnforensics.perturbation import perturb

from .pretrained import ONET_INPUTS, finetune_on_mnist, pretrained_onet
from .trained import trained


@pytest.fixture(scope="module")
def original():
    return trained("lenet", 1.0, seed=0)


@pytest.fixture(scope="module")
def permuted(original):
    return permute(original, seed=4).model


@pytest.fixture(scope="module")
def onet():
    model = pretrained_onet()
    return model, permute(model, seed=4, example_inputs=ONET_INPUTS).model


def test_identical_and_permuted_copies_score_exactly_one(original, permuted):
    assert compare(original, original.model).verdict == "identical"
    result = compare(original, permuted)
    assert result.verdict == "permuted" and result.similarity == 1.0 and result.permuted_groups == 4
    assert result.reidentified == result.units == 226
    assert result.summary().startswith("permuted")


@pytest.mark.parametrize("arch, width", [("vgg11_bn", 0.125), ("resnet18", 0.125)])
def test_permuted_batchnorm_networks_score_exactly_one(arch, width):
    model = trained(arch, width)
    result = compare(model, permute(model, seed=2).model)
    assert result.verdict == "permuted" and result.similarity == 1.0


def test_permuted_pretrained_network_scores_exactly_one(onet):
    model, permuted_onet = onet
    result = compare(model, permuted_onet, example_inputs=ONET_INPUTS)
    assert result.verdict == "permuted" and result.similarity == 1.0 and result.reidentified == 544


def test_every_quantization_width_is_recognised_with_its_bits(original, permuted):
    for bits in range(2, 17):
        result = compare(original, perturb(permuted, "quantize", bits).model)
        assert (result.verdict, result.kind, result.kind_detail) == ("derived", "quantization", f"{bits} bits"), bits
        weights = [r for r in result.layers if r["is_weight"]]
        assert all(r["bits"] == bits and r["kind"] == "quantization" for r in weights), bits
        assert all(not r["changed"] for r in result.layers if not r["is_weight"])  # biases untouched


def test_per_channel_symmetric_quantization_is_recognised(original, permuted):
    model = copy.deepcopy(permuted)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:  # 8-bit symmetric, one scale per output channel (as fbgemm does)
                scale = p.abs().amax(dim=tuple(range(1, p.dim())), keepdim=True) / 127
                p.copy_(torch.round(p / scale) * scale)
    result = compare(original, model)
    assert (result.kind, result.kind_detail) == ("quantization", "8 bits")
    assert {r.get("grid") for r in result.layers if r["is_weight"]} == {"symmetric per channel"}


@pytest.mark.parametrize("omega", [0.25, 0.5, 1.0, 2.0, 4.0])
def test_noise_on_a_pretrained_network_reads_as_noise(onet, omega):
    """Three noise draws per level; Ω = 4 on every layer leaves the network useless, and there the
    evidence thins (the verdict may be given with low confidence) but never reads as fine-tuning."""
    model, permuted_onet = onet
    for seed in (1, 2, 3):
        result = compare(model, perturb(permuted_onet, "noise", omega, seed=seed).model, example_inputs=ONET_INPUTS)
        assert result.verdict == "derived" and result.kind == "noise", result.summary()
        assert abs(float(result.kind_detail.split("≈")[1]) - omega) < 0.1 * omega
        assert not any(r["kind"] == "fine-tuning" for r in result.layers), "a noise copy must not read as fine-tuning"
        if omega <= 2:
            assert result.confidence == "high" and result.kind_confidence == "high", result.summary()


@pytest.mark.parametrize("omega", [0.5, 4.0])
def test_noise_on_a_batchnorm_network_reads_as_noise(omega):
    model = trained("resnet18", 0.125)
    suspect = perturb(permute(model, seed=3).model, "noise", omega, seed=1).model
    result = compare(model, suspect)
    assert result.verdict == "derived" and result.kind == "noise", result.summary()
    assert not any(r["kind"] == "fine-tuning" for r in result.layers)


@pytest.mark.parametrize("lr", [1e-2, 1e-4])
def test_fine_tuned_pretrained_network_reads_as_fine_tuning(onet, lr):
    model, permuted_onet = onet
    tuned = finetune_on_mnist(permuted_onet, 20, lr, 48, rgb=True, classes=slice(6, 16))
    result = compare(model, tuned, example_inputs=ONET_INPUTS)
    assert result.verdict == "derived" and result.kind == "fine-tuning", result.summary()
    assert result.similarity > 0.9 and "biases/normalisation changed too" in result.kind_detail


def test_fine_tuned_batchnorm_network_reads_as_fine_tuning():
    model = trained("resnet18", 0.125)
    tuned = finetune_on_mnist(permute(model, seed=3).model, 30, 0.02, 28, rgb=False)
    result = compare(model, tuned)
    assert result.verdict == "derived" and result.kind == "fine-tuning" and result.kind_confidence == "high"


def test_recipe_fine_tuning(original, permuted):
    suspect = perturb(permuted, "finetune", 5, data="mnist", meta=original.meta, seed=0).model
    result = compare(original, suspect)
    assert result.verdict == "derived" and result.kind == "fine-tuning"


def test_pruning_and_scaling(original, permuted):
    pruned = compare(original, perturb(permuted, "prune", 0.9, seed=1).model)
    assert (pruned.verdict, pruned.kind, pruned.kind_detail) == ("derived", "pruning", "90 % zeros")
    scaled = compare(original, perturb(permuted, "scale", 2.0, target="fc1", neurons=[0, 3, 5]).model)
    assert scaled.kind == "scaling" and scaled.changed_layers == ["fc1"]
    assert {r["tensor"]: r["kind"] for r in scaled.layers if r["changed"]} == {"fc1.weight": "scaling",
                                                                             "fc1.bias": "scaling"}
    row = next(r for r in scaled.layers if r["tensor"] == "fc1.weight")
    assert row["neuron_cosine_min"] > 0.999999 and row["n_scaled_neurons"] == 3
    assert scaled.kind_detail.startswith("3 neuron(s) scaled x2")


@pytest.mark.parametrize("arch, width", [("lenet", 1.0), ("vgg11_bn", 0.125), ("resnet18", 0.125)])
def test_unrelated_model_from_another_seed(arch, width):
    result = compare(trained(arch, width, seed=0), trained(arch, width, seed=1))
    assert result.verdict == "unrelated" and result.confidence == "high" and result.similarity < 0.06
    assert all(row["kind"] is None for row in result.layers), "kinds of change do not apply to unrelated models"
    assert result.permuted_groups is None and result.kind is None
    assert "do not apply" in result.summary()
    assert result.to_dict()["permuted_groups"] is None


def test_changed_layers_are_listed_in_model_order():
    model = trained("vgg11_bn", 0.125)
    result = compare(model, perturb(permute(model, seed=1).model, "noise", 0.5, seed=1).model)
    order = [name for name, _ in model.model.named_modules()]
    assert result.changed_layers == sorted(result.changed_layers, key=order.index)
    assert result.changed_layers.index("features.4") < result.changed_layers.index("features.11")


def _int8(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """torch's int8 fake quantization: codes clamp(round(x / scale) + zero, -128, 127), back to floats."""
    return (torch.clamp(torch.round(x / scale) + zero, -128, 127) - zero) * scale


@pytest.mark.parametrize("scheme", ["per_tensor_affine", "per_tensor_symmetric", "per_channel_symmetric",
                                    "per_channel_affine"])
def test_int8_quantization_schemes_of_torch_are_recognised(original, permuted, scheme):
    """The schemes of torch's int8 quantizers with min-max observers (codes -128..127, zero points)."""
    model = copy.deepcopy(permuted)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() < 2:
                continue
            dims = tuple(range(1, p.dim())) if scheme.startswith("per_channel") else tuple(range(p.dim()))
            lo, hi = p.amin(dim=dims, keepdim=True), p.amax(dim=dims, keepdim=True)
            if scheme.endswith("symmetric"):
                scale, zero = torch.maximum(-lo, hi) / 127.5, torch.zeros_like(lo)
            else:
                scale = (hi - lo) / 255
                zero = torch.round(-128 - lo / scale)
            p.copy_(_int8(p, scale, zero))
    result = compare(original, model)
    assert (result.verdict, result.kind, result.kind_detail) == ("derived", "quantization", "8 bits"), result.summary()


@pytest.mark.parametrize("dtype, name", [(torch.float16, "float16"), (torch.bfloat16, "bfloat16")])
def test_rounding_to_a_narrower_float_format_reads_as_quantization(original, permuted, dtype, name):
    model = copy.deepcopy(permuted).to(dtype).float()
    result = compare(original, model)
    assert (result.verdict, result.kind, result.kind_detail) == ("derived", "quantization", name), result.summary()


def test_noise_on_every_parameter_biases_included_reads_as_noise(onet):
    model, permuted_onet = onet
    noisy = copy.deepcopy(permuted_onet)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in noisy.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * p.std() * 0.5)
    result = compare(model, noisy, example_inputs=ONET_INPUTS)
    assert (result.verdict, result.kind) == ("derived", "noise"), result.summary()
    assert {r["kind"] for r in result.layers if r["changed"]} <= {"noise", "unmatched"}


class _Linear(torch.nn.Module):
    """No permutation group at all: its input and output axes are the network's own."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(20, 5)

    def forward(self, x):
        return self.fc(x)


def test_networks_without_neurons_to_reidentify_are_judged_tensor_by_tensor():
    inputs = torch.rand(2, 20)
    torch.manual_seed(0)
    a, b = _Linear().eval(), _Linear().eval()
    unrelated = compare(a, b, example_inputs=inputs)
    assert (unrelated.verdict, unrelated.basis, unrelated.confidence) == ("unrelated", "tensors", "low")
    assert "no permutation group of 3 or more neurons" in unrelated.summary()
    noisy = compare(a, perturb(a, "noise", 0.5, seed=1).model, example_inputs=inputs)
    assert (noisy.verdict, noisy.basis, noisy.reidentified, noisy.units) == ("derived", "tensors", 1, 1)
    identical = compare(a, copy.deepcopy(a), example_inputs=inputs)
    assert identical.verdict == "identical" and identical.units is None and "0 of 0" not in identical.summary()
