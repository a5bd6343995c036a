"""Perturbations (REFERENCE §1): each one against its definition, plus the CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.utils.prune as torch_prune

from nnforensics.errors import ConfigError, UnknownNameError
from nnforensics.io import ModelMeta
from nnforensics.models import load_model
from nnforensics.perturbation import ATTACKS, perturb, quantize_tensor, validate_level


class Tiny(nn.Module):
    """conv (4 out) -> linear (6 out) -> linear (3 out), plus a transposed conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.fc1 = nn.Linear(40, 6)
        self.fc2 = nn.Linear(6, 3)
        self.up = nn.ConvTranspose2d(3, 5, 2)


def tiny(seed: int = 0) -> Tiny:
    torch.manual_seed(seed)
    return Tiny()


def big_linear(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(300, 400), nn.ReLU(), nn.Linear(400, 10))


def same(a: nn.Module, b: nn.Module, prefix: str = "") -> bool:
    """Bit-identical parameters under ``prefix``."""
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if k.startswith(prefix))


# ----------------------------------------------------------------- noise

def test_noise_std_matches_omega_sigma_and_leaves_the_rest_alone():
    model = big_linear()
    w = model[0].weight.detach().clone()
    sigma = float(w.double().std(unbiased=False))
    result = perturb(model, "noise", 2.5, layers=["0"], seed=3)
    delta = (result.model[0].weight.detach() - w).double()
    assert abs(float(delta.std()) / (2.5 * sigma) - 1) < 0.01  # 120,000 samples
    assert abs(float(delta.mean())) < 0.01 * 2.5 * sigma
    assert torch.equal(result.model[0].bias, model[0].bias)  # biases untouched
    assert same(result.model, model, "2.")  # layer not chosen: bit-identical
    assert torch.equal(model[0].weight, w)  # the input model is not modified
    assert result.changes[0]["sigma"] == pytest.approx(sigma)


def test_noise_is_seeded_and_omega_zero_is_identity():
    model = big_linear()
    a = perturb(model, "noise", 1.0, seed=7).model
    b = perturb(model, "noise", 1.0, seed=7).model
    c = perturb(model, "noise", 1.0, seed=8).model
    assert same(a, b) and not same(a, c)
    assert same(perturb(model, "noise", 0.0, seed=7).model, model)


def test_noise_keeps_dtype_and_device():
    model = big_linear().double()
    out = perturb(model, "noise", 1.0).model
    assert out[0].weight.dtype == torch.float64
    assert out[0].weight.device == model[0].weight.device


# ----------------------------------------------------------------- quantize

def reference_quantize(x: np.ndarray, bits: int) -> np.ndarray:
    """REFERENCE §1, written independently in numpy (float64)."""
    lo, hi = x.min(), x.max()
    qmax = 2.0**bits - 1
    scale = qmax / (hi - lo)
    q = np.round(np.clip((x - lo) * scale, 0, qmax))
    return q / scale + lo


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
def test_quantize_formula_and_number_of_values(bits):
    model = big_linear()
    w = model[0].weight.detach().double().numpy()
    out = perturb(model, "quantize", bits, layers=["0"]).model
    got = out[0].weight.detach()
    assert int(torch.unique(got).numel()) <= 2**bits
    np.testing.assert_array_equal(got.numpy(), reference_quantize(w, bits).astype(np.float32))
    assert torch.equal(out[0].bias, model[0].bias)
    assert same(out, model, "2.")


def test_quantize_constant_tensor_and_32_bits():
    const = torch.full((3, 4), 0.25)
    assert torch.equal(quantize_tensor(const, 4), const)  # max == min: unchanged
    x = torch.randn(100, 50, generator=torch.Generator().manual_seed(0))
    assert float((quantize_tensor(x, 32) - x).abs().max()) < 1e-6


# ----------------------------------------------------------------- prune

@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.9, 0.99])
def test_prune_exact_count_per_layer_and_matches_torch(fraction):
    model = big_linear()
    out = perturb(model, "prune", fraction).model
    for name in ("0", "2"):
        before, after = model.get_submodule(name).weight, out.get_submodule(name).weight
        n = before.numel()
        assert int((after == 0).sum()) == round(fraction * n)
        mask = torch_prune.L1Unstructured(amount=fraction).compute_mask(before.detach(), torch.ones_like(before))
        assert torch.equal(after, before * mask)
        assert torch.equal(out.get_submodule(name).bias, model.get_submodule(name).bias)


def test_prune_ties_are_deterministic():
    model = nn.Linear(5, 4)
    with torch.no_grad():
        model.weight.fill_(0.5)
    out = perturb(model, "prune", 0.5).model
    flat = out.weight.flatten()
    assert torch.equal(flat[:10], torch.zeros(10)) and torch.equal(flat[10:], torch.full((10,), 0.5))


def test_global_prune_uses_one_threshold():
    model = big_linear()
    out = perturb(model, "prune", 0.9, global_prune=True).model
    total = sum(model.get_submodule(n).weight.numel() for n in ("0", "2"))
    zeros = sum(int((out.get_submodule(n).weight == 0).sum()) for n in ("0", "2"))
    assert zeros == round(0.9 * total)
    pruned = torch.cat([model.get_submodule(n).weight.detach()[out.get_submodule(n).weight == 0].abs() for n in ("0", "2")])
    kept = torch.cat([out.get_submodule(n).weight.detach()[out.get_submodule(n).weight != 0].abs() for n in ("0", "2")])
    assert float(pruned.max()) <= float(kept.min())
    # the layers' own sparsities differ (one threshold, not one fraction per layer)
    fractions = [float((out.get_submodule(n).weight == 0).double().mean()) for n in ("0", "2")]
    assert fractions[0] != pytest.approx(fractions[1])


# ----------------------------------------------------------------- scale

def test_scale_exact_factor_on_chosen_neurons():
    model = tiny()
    out = perturb(model, "scale", 1.5, layers=["fc1"], neurons=[0, 3, 5]).model
    w0, w1 = model.fc1.weight.detach(), out.fc1.weight.detach()
    chosen, others = [0, 3, 5], [1, 2, 4]
    assert torch.equal(w1[chosen], w0[chosen] * 1.5)
    assert torch.equal(out.fc1.bias[chosen], model.fc1.bias[chosen] * 1.5)
    assert torch.equal(w1[others], w0[others]) and torch.equal(out.fc1.bias[others], model.fc1.bias[others])
    cos = torch.nn.functional.cosine_similarity(w0[chosen], w1[chosen], dim=1)
    assert torch.allclose(cos, torch.ones(3))  # the paper's integrity attack: cosine stays 1
    for prefix in ("conv.", "fc2.", "up."):
        assert same(out, model, prefix)


def test_scale_transposed_conv_uses_output_axis_and_default_all():
    model = tiny()
    out = perturb(model, "scale", -2.0, layers=["up"], neurons=[4]).model
    assert torch.equal(out.up.weight[:, 4], model.up.weight[:, 4] * -2.0)
    assert torch.equal(out.up.weight[:, :4], model.up.weight[:, :4])
    every = perturb(model, "scale", 2.0, target="fc2").model
    assert torch.equal(every.fc2.weight, model.fc2.weight * 2) and torch.equal(every.fc2.bias, model.fc2.bias * 2)


def test_scale_random_fraction_is_seeded():
    model = big_linear()
    a = perturb(model, "scale", 2.0, layers=["0"], fraction=0.25, seed=1)
    b = perturb(model, "scale", 2.0, layers=["0"], fraction=0.25, seed=1)
    c = perturb(model, "scale", 2.0, layers=["0"], fraction=0.25, seed=2)
    assert a.changes[0]["neurons"] == b.changes[0]["neurons"] != c.changes[0]["neurons"]
    assert a.changes[0]["n_scaled"] == 100


# ----------------------------------------------------------------- metadata, copies, errors

def test_history_and_inplace():
    model = big_linear()
    meta = ModelMeta(arch="x", metrics={"test_accuracy": 99.0})
    result = perturb(model, "prune", 0.5, target="penultimate", seed=4, meta=meta)
    entry = result.meta.history[-1]
    assert entry == {"op": "perturb", "attack": "prune", "level": 0.5, "seed": 4, "layers": ["0"], "global": False,
                     "metrics_before": {"test_accuracy": 99.0}}
    assert result.meta.metrics == {} and meta.history == []  # stale metrics dropped; input meta untouched
    same_object = perturb(model, "scale", 2.0, layers=["2"], inplace=True)
    assert same_object.model is model


@pytest.mark.parametrize("attack, level", [
    ("noise", -1), ("noise", float("nan")), ("quantize", 0), ("quantize", 33), ("quantize", 4.5),
    ("prune", 1.0), ("prune", -0.1), ("finetune", 0), ("scale", 0), ("scale", float("inf")),
])
def test_levels_out_of_range_name_the_valid_range(attack, level):
    with pytest.raises(ConfigError, match=attack.replace("finetune", "finetune level")):
        validate_level(attack, level)
    with pytest.raises(ConfigError):
        perturb(big_linear(), attack, level)


def test_bad_inputs():
    model = tiny()
    with pytest.raises(UnknownNameError, match="valid attacks: finetune, noise, prune, quantize, scale"):
        perturb(model, "blur", 1)
    with pytest.raises(UnknownNameError, match="layer"):
        perturb(model, "noise", 1, layers=["nope"])
    with pytest.raises(ConfigError, match="scale attack"):
        perturb(model, "noise", 1, neurons=[0])
    with pytest.raises(ConfigError, match="out of range"):
        perturb(model, "scale", 2, layers=["fc1"], neurons=[6])
    with pytest.raises(ConfigError, match="prune"):
        perturb(model, "noise", 1, global_prune=True)
    with pytest.raises(ConfigError, match="records none"):
        perturb(model, "finetune", 5, data="digits", meta=ModelMeta(arch="x"))
    with pytest.raises(ConfigError, match="needs training data"):
        perturb(model, "finetune", 5, meta=ModelMeta(arch="x", recipe={"epochs": 1}))
    assert set(ATTACKS) == {"noise", "quantize", "prune", "finetune", "scale"}


# ----------------------------------------------------------------- fine-tuning on real data

def test_finetune_changes_weights_and_is_seeded(trained_digits_model):
    loaded = load_model(trained_digits_model)
    a = perturb(loaded, "finetune", 50, data="digits", seed=1)
    b = perturb(loaded, "finetune", 50, data="digits", seed=1)
    assert not same(a.model, loaded.model) and same(a.model, b.model)
    assert a.meta.history[-1]["attack"] == "finetune" and a.meta.history[-1]["epochs"] == pytest.approx(2.5)
    assert a.changes[0]["steps"] > 0
    only_last = perturb(loaded, "finetune", 50, data="digits", target="last", seed=1)
    assert same(only_last.model, loaded.model, "layers.1.") and same(only_last.model, loaded.model, "layers.3.")
    assert not same(only_last.model, loaded.model, "layers.5.")


# ----------------------------------------------------------------- CLI

def test_cli_perturb_writes_model_and_json(trained_digits_model, tmp_path, run_cli):
    out = tmp_path / "noisy.safetensors"
    result = run_cli("perturb", trained_digits_model, "-o", out, "--noise", "3", "--seed", "2", "--json", "-q")
    assert result.code == 0, result.err
    payload = result.json()
    assert payload["attack"] == "noise" and payload["level"] == 3.0 and payload["path"] == str(out)
    assert [c["layer"] for c in payload["changes"]] == ["layers.1", "layers.3", "layers.5"]
    loaded = load_model(out)
    assert loaded.meta.history[-1]["op"] == "perturb" and loaded.meta.history[-1]["seed"] == 2
    expected = perturb(load_model(trained_digits_model), "noise", 3, seed=2).model
    assert same(loaded.model, expected)

    result = run_cli("perturb", trained_digits_model, "-o", tmp_path / "s.safetensors", "--scale", "2",
                     "--neurons", "0,3", "--target", "penultimate")
    assert result.code == 0 and "layers.3" in result.out and "wrote" in result.out


def test_cli_perturb_finetune(trained_digits_model, tmp_path, run_cli):
    out = tmp_path / "ft.safetensors"
    result = run_cli("perturb", trained_digits_model, "-o", out, "--finetune", "25", "--data", "digits", "--json")
    assert result.code == 0 and result.json()["changes"][0]["dataset"] == "digits"
    assert load_model(out).meta.history[-1]["data"] == "digits"


@pytest.mark.parametrize("extra, message", [
    ([], "exactly one perturbation"),
    (["--noise", "1", "--prune", "0.5"], "exactly one perturbation"),
    (["--quantize", "40"], "1..32"),
    (["--finetune", "5"], "needs training data"),
    (["--noise", "1", "--layers", "nope"], "unknown layer"),
    (["--scale", "2", "--neurons", "a,b"], "comma-separated integers"),
])
def test_cli_perturb_errors(trained_digits_model, tmp_path, run_cli, extra, message):
    result = run_cli("perturb", trained_digits_model, "-o", tmp_path / "x.safetensors", *extra)
    assert result.code == 1 and message in result.err
    assert not (tmp_path / "x.safetensors").exists()


def test_cli_perturb_refuses_to_overwrite_its_input(trained_digits_model, tmp_path, run_cli):
    model = tmp_path / "model.safetensors"
    shutil.copy(trained_digits_model, model)  # never risk the shared fixture
    before = model.read_bytes()
    result = run_cli("perturb", model, "-o", model, "--noise", "1")
    assert result.code == 1 and "also an input" in result.err
    assert model.read_bytes() == before
