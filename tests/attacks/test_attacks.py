"""FGSM and PGD: against torchattacks as an oracle, on a LeNet trained on real MNIST, and their contracts."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from nnforensics.attacks import (
    ATTACKS,
    FGSM,
    PGD,
    Attack,
    accuracy_under_attack,
    adversarial_examples,
    make_attack,
)
from nnforensics.data import load_dataset, to_float
from nnforensics.errors import ConfigError, DataError, ShapeMismatchError, UnknownNameError

from ..core.trained import trained


def small_cnn(seed: int = 0) -> nn.Module:
    """A random CNN with BatchNorm and Dropout for (B, 3, 8, 8) inputs, 5 classes."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(0.5), nn.Linear(6 * 4 * 4, 5))


def batch(n: int = 24, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=gen), torch.randint(0, 5, (n,), generator=gen)


def trained_bn(model: nn.Module) -> nn.Module:
    """Give BatchNorm non-default running statistics (a few forward passes in train mode)."""
    with torch.no_grad():
        for seed in range(3):
            model(batch(32, seed=10 + seed)[0])
    return model


@pytest.fixture(scope="module")
def mnist():
    net = trained("lenet", 1.0, seed=0).classifier()
    data = load_dataset("mnist", "test", limit=400)
    return net, to_float(data.x), data.y


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return 100.0 * float((net(x).argmax(1) == y).float().mean())


# --- torchattacks as the oracle -------------------------------------------------------------------------------


def test_fgsm_equals_torchattacks_fgsm():
    torchattacks = pytest.importorskip("torchattacks")
    model = trained_bn(small_cnn()).eval()
    x, y = batch()
    ours = FGSM(model, eps=0.07)(x, y)
    theirs = torchattacks.FGSM(model, eps=0.07)(x, y)
    assert (ours - x).abs().max() > 0.069  # the attack did something
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_pgd_without_random_start_equals_torchattacks_pgd():
    torchattacks = pytest.importorskip("torchattacks")
    model = trained_bn(small_cnn()).eval()
    x, y = batch()
    ours = PGD(model, eps=8 / 255, step=2 / 255, steps=7, random_start=False)(x, y)
    theirs = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=7, random_start=False)(x, y)
    fgsm = FGSM(model, eps=8 / 255)(x, y)
    assert not torch.allclose(ours, fgsm)  # several steps, not one
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


# --- on a LeNet trained on real MNIST -------------------------------------------------------------------------


def test_fgsm_and_pgd_break_a_trained_mnist_lenet(mnist):
    net, x, y = mnist
    clean = accuracy(net, x, y)
    fgsm = accuracy_under_attack(net, x, y, FGSM(net, eps=0.15))
    pgd = accuracy_under_attack(net, x, y, PGD(net, eps=0.15, steps=5))
    assert clean > 80
    assert fgsm["n"] == pgd["n"] == 400
    assert fgsm["accuracy"] < 40 and clean - fgsm["accuracy"] > 40
    assert pgd["accuracy"] < fgsm["accuracy"] - 5  # the iterated attack is stronger at the same budget
    assert accuracy_under_attack(net, x, y, FGSM(net, eps=0.0))["accuracy"] == pytest.approx(clean)


def test_adversarial_examples_agree_with_accuracy_under_attack(mnist):
    net, x, y = mnist
    attack = FGSM(net, eps=0.1)
    x_adv = adversarial_examples(attack, x[:200], y[:200], batch_size=64)
    assert accuracy(net, x_adv, y[:200]) == pytest.approx(
        accuracy_under_attack(net, x[:200], y[:200], attack)["accuracy"])


# --- contracts ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attack", [lambda m: FGSM(m, eps=0.05), lambda m: PGD(m, eps=0.05, steps=4)])
def test_perturbation_stays_in_the_eps_ball_and_in_unit_range(attack):
    model = trained_bn(small_cnn()).eval()
    x, y = batch()
    x[:, :, 0] = 0.0  # pixels at the bounds: clamping must keep them inside [0, 1]
    x[:, :, 1] = 1.0
    adv = attack(model)(x, y)
    assert adv.shape == x.shape and adv.dtype == torch.float32 and adv.device == x.device
    assert (adv - x).abs().max() <= 0.05 + 1e-6
    assert (adv - x).abs().max() > 0.04
    assert adv.min() >= 0 and adv.max() <= 1


@pytest.mark.parametrize("make", [lambda m: FGSM(m, eps=0.1), lambda m: PGD(m, eps=0.1, steps=3)])
def test_the_model_is_left_exactly_as_it_was(make):
    model = trained_bn(small_cnn())  # in train mode: BatchNorm would update its statistics
    model[5].eval()  # mixed flags must come back per module
    flags = [m.training for m in model.modules()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model[0].weight.requires_grad_(False)
    requires_grad = [p.requires_grad for p in model.parameters()]
    x, y = batch()
    make(model)(x, y)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats and counts included
    assert [m.training for m in model.modules()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == requires_grad


def test_train_flags_are_restored_when_the_attack_fails():
    model = small_cnn().train()
    x, _ = batch()
    with pytest.raises(ShapeMismatchError, match="labels must lie in"):
        FGSM(model, eps=0.1)(x, torch.full((len(x),), 7))  # 5 classes
    assert all(m.training for m in model.modules())


def test_pgd_random_start_does_not_depend_on_the_batch_size():
    model = trained_bn(small_cnn()).eval()
    x, y = batch(40)
    attack = PGD(model, eps=0.1, steps=2, seed=3)
    small = adversarial_examples(attack, x, y, batch_size=7)
    large = adversarial_examples(attack, x, y, batch_size=64)
    assert torch.equal(small, large)
    assert torch.equal(attack(x[7:14], y[7:14], index=7), small[7:14])
    other = adversarial_examples(PGD(model, eps=0.1, steps=2, seed=4), x, y, batch_size=7)
    assert not torch.equal(other, small)  # the seed matters


def test_pgd_random_start_is_uniform_in_the_eps_ball():
    noise = PGD(small_cnn(), eps=0.2).start_noise(torch.Size((50, 3, 8, 8)), 0)
    assert noise.min() >= -0.2 and noise.max() <= 0.2
    assert noise.min() < -0.19 and noise.max() > 0.19 and abs(float(noise.mean())) < 0.01


@pytest.mark.parametrize("attack", [FGSM, PGD])
def test_eps_zero_returns_the_inputs_unchanged(attack):
    x, y = batch()
    assert torch.equal(attack(small_cnn(), eps=0)(x, y), x)


def test_adversarial_examples_returns_cpu_float32_and_reads_uint8_images():
    model = small_cnn().eval()
    x8 = (batch()[0] * 255).round().to(torch.uint8)
    _, y = batch()
    out = adversarial_examples(FGSM(model, eps=0.1), x8, y, batch_size=5)
    assert out.dtype == torch.float32 and out.device.type == "cpu" and out.shape == x8.shape
    torch.testing.assert_close(out, FGSM(model, eps=0.1)(to_float(x8), y), atol=0, rtol=0)


def test_config_is_json_and_rebuilds_the_same_attack():
    model = small_cnn()
    pgd = make_attack("pgd", model, eps=0.1, steps=5)
    config = json.loads(json.dumps(pgd.config()))
    assert config == {"attack": "pgd", "eps": 0.1, "step": 0.025, "steps": 5, "random_start": True, "seed": 0}
    assert make_attack(config.pop("attack"), model, **config).config() == pgd.config()
    assert FGSM(model, eps=0.2).config() == {"attack": "fgsm", "eps": 0.2}
    assert set(ATTACKS) == {"fgsm", "pgd"} and all(issubclass(c, Attack) for c in ATTACKS.values())


# --- validation -----------------------------------------------------------------------------------------------


def test_unknown_attack_names_and_options_are_clear_errors():
    with pytest.raises(UnknownNameError, match="unknown attack 'cw'.*fgsm, pgd"):
        make_attack("cw", small_cnn(), eps=0.1)
    with pytest.raises(ConfigError, match="'fgsm' does not take steps"):
        make_attack("fgsm", small_cnn(), eps=0.1, steps=3)


@pytest.mark.parametrize("eps", [-0.1, 1.5, float("nan"), float("inf"), "0.1", True, None])
def test_invalid_eps_is_a_config_error(eps):
    with pytest.raises(ConfigError, match="eps must be a finite number in"):
        FGSM(small_cnn(), eps=eps)


@pytest.mark.parametrize("kw, message", [
    ({"steps": 0}, "steps must be an integer"), ({"steps": 2.5}, "steps must be an integer"),
    ({"steps": True}, "steps must be an integer"), ({"step": 0}, "step must be a finite number > 0"),
    ({"step": -0.1}, "step must be"), ({"step": float("nan")}, "step must be"),
    ({"random_start": 1}, "random_start"), ({"seed": 1.5}, "seed must be an integer"),
])
def test_invalid_pgd_settings_are_config_errors(kw, message):
    with pytest.raises(ConfigError, match=message):
        PGD(small_cnn(), eps=0.1, **kw)


def test_bad_inputs_are_data_or_shape_errors():
    attack = FGSM(small_cnn(), eps=0.1)
    x, y = batch()
    with pytest.raises(DataError, match="normalisation belongs inside the model"):
        attack((x - 0.5) / 0.25, y)
    with pytest.raises(DataError, match="normalisation belongs inside the model"):
        adversarial_examples(attack, x + 1.0, y)
    attack(torch.clamp(x + 5e-7, max=1 + 5e-7), y)  # rounding noise is tolerated
    with pytest.raises(DataError, match="empty"):
        attack(x[:0], y[:0])
    with pytest.raises(DataError, match="empty"):
        adversarial_examples(attack, x[:0], y[:0])
    with pytest.raises(ShapeMismatchError, match="24 inputs but labels of shape"):
        attack(x, y[:5])
    with pytest.raises(ShapeMismatchError, match="24 inputs"):
        accuracy_under_attack(attack.model, x, y[:5], attack)
    with pytest.raises(DataError, match="labels must be integer"):
        attack(x, y.float())
    with pytest.raises(ConfigError, match="batch size"):
        adversarial_examples(attack, x, y, batch_size=0)
