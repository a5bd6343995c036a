"""compare(): verdicts and kinds of modification on models trained on real MNIST."""

from __future__ import annotations

import pytest

from nnforensics.integrity import compare
from nnforensics.perturbation import perturb
from nnforensics.permutation import permute

from .trained import trained


@pytest.fixture(scope="module")
def original():
    return trained("lenet", 1.0, seed=0)


@pytest.fixture(scope="module")
def permuted(original):
    return permute(original, seed=4).model


def test_identical_and_permuted(original, permuted):
    assert compare(original, original.model).verdict == "identical"
    result = compare(original, permuted)
    assert result.verdict == "permuted" and result.similarity > 0.9 and result.permuted_groups == 4


@pytest.mark.parametrize("attack, level, options, kind", [
    ("noise", 1.0, {}, "noise"),
    ("quantize", 4, {}, "quantization"),
    ("prune", 0.9, {}, "pruning"),
    ("scale", 2.0, {"target": "fc1"}, "scaling"),
])
def test_derived_with_the_right_kind(original, permuted, attack, level, options, kind):
    suspect = perturb(permuted, attack, level, seed=1, **options).model
    result = compare(original, suspect)
    assert result.verdict == "derived"
    assert result.kind == kind
    changed = [row["tensor"] for row in result.layers if row["changed"]]
    if attack == "scale":
        assert changed == ["fc1.weight", "fc1.bias"]
        row = next(r for r in result.layers if r["tensor"] == "fc1.weight")
        assert row["neuron_cosine_min"] > 0.999999 and abs(row["neuron_norm_ratio_min"] - 2) < 1e-6


def test_finetuned_copy(original, permuted):
    suspect = perturb(permuted, "finetune", 5, data="mnist", meta=original.meta, seed=0).model
    result = compare(original, suspect)
    assert result.verdict == "derived" and result.kind == "fine-tuning"


@pytest.mark.parametrize("arch, width", [("lenet", 1.0), ("vgg11_bn", 0.125), ("resnet18", 0.125)])
def test_unrelated_model_from_another_seed(arch, width):
    result = compare(trained(arch, width, seed=0), trained(arch, width, seed=1))
    assert result.verdict == "unrelated" and result.similarity < 0.15


@pytest.mark.parametrize("arch, width", [("vgg11_bn", 0.125), ("resnet18", 0.125)])
def test_noisy_copy_of_a_batchnorm_network(arch, width):
    model = trained(arch, width)
    suspect = perturb(permute(model, seed=3).model, "noise", 2.0, seed=1).model
    result = compare(model, suspect)
    assert result.verdict == "derived" and result.kind == "noise" and result.similarity > 0.6
