"""`nnf compare` output: the verdict first, every changed layer, nothing contradicting the verdict."""

from __future__ import annotations

import pytest

from nnforensics.io import save_model
from nnforensics.permutation import permute
from nnforensics.perturbation import perturb

from .trained import trained


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare-cli")
    original = trained("resnet18", 0.125)
    paths = {"original": save_model(original.model, folder / "original.safetensors", original.meta)}
    noisy = perturb(permute(original, seed=5).model, "noise", 0.5, seed=1).model
    paths["noisy"] = save_model(noisy, folder / "noisy.safetensors", original.meta)
    paths["quantized"] = save_model(perturb(permute(original, seed=6).model, "quantize", 12).model,
                                    folder / "quantized.safetensors", original.meta)
    other = trained("resnet18", 0.125, seed=1)
    paths["other"] = save_model(other.model, folder / "other.safetensors", other.meta)
    return paths


def test_verdict_comes_first_and_every_changed_layer_is_named_in_model_order(run_cli, files):
    out = run_cli("compare", files["original"], files["noisy"])
    assert out.code == 0, out.err
    lines = out.out.splitlines()
    assert lines[0].startswith("verdict: derived (high confidence): a modified copy, most likely noise")
    assert lines[1].startswith("changed layers (21, in model order): conv1, layer1.0.conv1, layer1.0.conv2,")
    assert lines[1].endswith("layer4.1.conv1, layer4.1.conv2, fc")  # all 21, not the first 8


def test_twelve_bit_quantization_is_not_called_fine_tuning(run_cli, files):
    payload = run_cli("compare", files["original"], files["quantized"], "--json").json()
    assert (payload["verdict"], payload["kind"], payload["kind_detail"]) == ("derived", "quantization", "12 bits")
    assert "fine-tuning" not in {row["kind"] for row in payload["layers"]}


def test_unrelated_output_never_names_a_kind_of_change(run_cli, files):
    out = run_cli("compare", files["original"], files["other"])
    assert out.code == 0, out.err
    assert out.out.startswith("verdict: unrelated (high confidence)")
    for word in ("fine-tuning", "noise", "quantization", "pruning", "groups were permuted"):
        assert word not in out.out, word
    payload = run_cli("compare", files["original"], files["other"], "--json").json()
    assert payload["kind"] is None and payload["permuted_groups"] is None
    assert {row["kind"] for row in payload["layers"]} == {None}
