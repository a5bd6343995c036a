"""Synaptic filtering on constructed models whose answers are known, and on a ResNet with BatchNorm."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn as nn

from nnforensics.attacks import adversarial_examples, make_attack
from nnforensics.errors import ConfigError, ShapeMismatchError, UnknownNameError
from nnforensics.fragility import FilterRun, filter_targets, layer_verdicts, run_filter, score_table
from nnforensics.fragility.analysis import check_init_state
from nnforensics.models import build_model

D, K, N = 24, 10, 400


class Toy(nn.Module):
    """``carry`` classifies; ``idle`` is multiplied by zero; ``harm`` (weights all negative) adds errors when on."""

    def __init__(self, teacher: torch.Tensor, harmful: bool):
        super().__init__()
        self.carry, self.idle, self.harm = nn.Linear(D, K), nn.Linear(D, K), nn.Linear(D, K)
        self.harm_scale = 1.0 if harmful else 0.0
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            self.carry.weight.copy_(teacher)
            self.carry.bias.copy_(-0.5 * teacher.sum(1))  # carry(x) = (x - 1/2) @ teacher.T: balanced classes
            self.idle.weight.copy_(torch.randn(K, D, generator=g))
            self.harm.weight.copy_(-torch.rand(K, D, generator=g) * 2 * (torch.arange(K) < K // 2).float()[:, None])
            self.harm.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.carry(x) + 0.0 * self.idle(x) + self.harm_scale * self.harm(x)


def _toy_data(harmful: bool = False):
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(K, D, generator=g)
    x = torch.rand(N, D, generator=g)
    y = ((x - 0.5) @ teacher.T).argmax(1)
    return Toy(teacher, harmful).eval(), x, y


def _fgsm(eps: float):
    def craft(net, x, y):
        return adversarial_examples(make_attack("fgsm", net, eps=eps), x, y, batch_size=128)
    return craft


def _curves(run: FilterRun, model: nn.Module, scope: str, filters, n: int = 10, init=None) -> pd.DataFrame:
    rows = []
    for kind in filters:
        for target in filter_targets(model, scope):
            for row in run_filter(run, target, kind, n, init=init):
                rows.append({**row, "model": "m", "scope": scope, "n": len(run.y),
                             "base_clean": run.base_clean, "base_adv": run.base_adv})
    return pd.DataFrame(rows)


def test_verdicts_on_a_constructed_model():
    model, x, y = _toy_data()
    run = FilterRun(model, x, y, craft=_fgsm(0.02))
    assert run.base_clean == 100.0
    scores = score_table(_curves(run, model, "local", ["high-pass", "low-pass", "pulse"]))
    verdicts = layer_verdicts(scores).set_index("layer")
    assert verdicts.loc["carry", "verdict"] == "fragile"  # it carries the function
    assert verdicts.loc["idle", "verdict"] == "robust"  # its removal cannot change the output
    assert verdicts.loc["idle", "confidence"] == "high"  # no prediction ever changes: no noise
    pulse = scores[(scores["layer"] == "carry") & (scores["filter"] == "pulse")].iloc[0]
    assert pulse["verdict"] == "fragile" and pulse["confidence"] == "high" and pulse["noise"] > 0
    idle = scores[scores["layer"] == "idle"]
    assert (idle["gain_clean"] == 0).all() and (idle["min_clean_norm"] == 1).all()
    carry = scores[(scores["layer"] == "carry") & (scores["filter"] != "pulse")]
    assert (carry["score_clean"] < -0.05).all()


def test_a_layer_whose_removal_helps_is_antifragile():
    model, x, y = _toy_data(harmful=True)
    run = FilterRun(model, x, y, craft=_fgsm(0.02))
    assert 30 < run.base_clean < 90  # the harmful layer costs accuracy
    scores = score_table(_curves(run, model, "local", ["high-pass", "low-pass", "pulse"]))
    verdicts = layer_verdicts(scores).set_index("layer")
    assert verdicts.loc["harm", "verdict"] == "antifragile"
    assert verdicts.loc["idle", "verdict"] == "robust"
    harm = scores[(scores["layer"] == "harm") & (scores["filter"] == "high-pass")].iloc[0]
    assert harm["gain_clean"] > 0.1


def _curve(clean, adv, base_adv=40.0):
    return pd.DataFrame({"model": "m", "scope": "local", "filter": "high-pass", "layer": "a",
                         "t": [0.0, 0.5, 1.0], "kept_fraction": [1.0, 0.5, 0.0], "clean_accuracy": clean,
                         "adv_accuracy": adv, "base_clean": 80.0, "base_adv": base_adv, "n": 1000,
                         "clean_flips": [0, 40, 720], "adv_flips": [0, 100, 380]})


def test_scores_follow_their_definition():
    row = score_table(_curve([80.0, 76.0, 8.0], [40.0, 50.0, 4.0])).iloc[0]
    # A_clean = 1, .95, .1 ; A - rho = 0, .45, .1 -> trapezoid over [0, 1] = .1125 + .1375 = .25
    assert row["score_clean"] == pytest.approx(0.25)
    # A_adv = 1, 1.25, .1 ; A - rho = 0, .75, .1 -> .1875 + .2125 = .4
    assert row["score_adv"] == pytest.approx(0.4)
    assert row["score_diff"] == pytest.approx(0.15)
    # gain_adv: max(A - 1, 0) = 0, .25, 0 (clean holds 95 % at t = .5) -> .0625 + .0625 = .125
    assert row["gain_adv"] == pytest.approx(0.125) and row["gain_clean"] == 0
    assert row["verdict"] == "antifragile" and row["decided_by"] == "adv"
    # the noise is the adversarial one: sqrt(flips) / n / intact accuracy, averaged over t
    expected = (0 + 100 ** 0.5 + 380 ** 0.5) / 3 / 1000 / 0.4
    assert row["noise"] == pytest.approx(expected)


def test_an_adversarial_gain_needs_clean_accuracy_and_a_real_baseline():
    collapsed = score_table(_curve([80.0, 8.0, 8.0], [40.0, 60.0, 4.0])).iloc[0]
    assert collapsed["gain_adv"] == 0 and collapsed["verdict"] == "fragile"
    unreliable = score_table(_curve([80.0, 76.0, 8.0], [2.0, 9.0, 4.0], base_adv=2.0)).iloc[0]
    assert unreliable["gain_adv"] > 0.05 and not unreliable["adv_reliable"]
    assert unreliable["verdict"] == "robust"  # the clean data alone decides


def _bn_resnet() -> nn.Module:
    model = build_model("resnet18", num_classes=10, in_channels=1, image_size=16, width=0.0625)
    g = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):  # statistics that would change visibly in training mode
            module.running_mean.copy_(torch.randn(module.num_features, generator=g) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=g) + 0.5)
    return model.eval()


def test_weights_and_batchnorm_statistics_are_bit_identical_afterwards():
    model = _bn_resnet()
    init = {k: v.clone() for k, v in build_model("resnet18", num_classes=10, in_channels=1, image_size=16,
                                                 width=0.0625).state_dict().items()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.rand(40, 1, 16, 16, generator=torch.Generator().manual_seed(2)), torch.arange(40) % 10
    run = FilterRun(model, x, y, normalization={"mean": [0.5], "std": [0.25]}, craft=_fgsm(0.05))
    some = ["conv1", "layer1.0.conv1", "layer2.0.downsample.0", "fc"]
    for kind in ("high-pass", "low-pass", "pulse", "reset"):
        for target in filter_targets(model, "local", some) + filter_targets(model, "global"):
            run_filter(run, target, kind, 3, init=init)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert not model.training


class _Recording(FilterRun):
    """Counts, at every evaluation, the zero weights of each layer."""

    def __init__(self, model, *args, **kwargs):
        self.layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        self.zeros = []
        super().__init__(model, *args, **kwargs)

    def evaluate(self):
        self.zeros.append({n: int((m.weight == 0).sum()) for n, m in self.layers})
        return super().evaluate()


def test_global_scope_filters_every_layer():
    model = _bn_resnet()
    x, y = torch.rand(20, 1, 16, 16), torch.arange(20) % 10
    run = _Recording(model, x, y, reuse_prefix=False)
    (target,) = filter_targets(model, "global")
    assert len(target.layers) == len(run.layers) == 21
    weights = {n: m.weight.detach().clone() for n, m in run.layers}
    lo = min(float(w.min()) for w in weights.values())
    hi = max(float(w.max()) for w in weights.values())
    rows = run_filter(run, target, "high-pass", 5)
    evaluated = [r for r in rows if r["removed"] > 0]
    assert len(run.zeros) == 1 + len(evaluated)  # the intact model, then one evaluation per new mask
    for row, zeros in zip(evaluated, run.zeros[1:]):
        alpha = lo + row["t"] * (hi - lo)  # one threshold for all layers, over the global range
        assert zeros == {n: int((w <= row["alpha"]).sum()) for n, w in weights.items()}
        assert row["alpha"] == pytest.approx(alpha)
    assert all(count > 0 for count in run.zeros[-2].values())  # at 3/4 of the range: every layer filtered
    assert rows[-1]["removed_fraction"] == 1.0


def test_cached_prefix_gives_the_same_rows_as_full_forward_passes():
    model = _bn_resnet()
    x, y = torch.rand(30, 1, 16, 16, generator=torch.Generator().manual_seed(3)), torch.arange(30) % 10
    fast = FilterRun(model, x, y, craft=_fgsm(0.05), batch_size=16)
    slow = FilterRun(model, x, y, craft=_fgsm(0.05), batch_size=16, reuse_prefix=False)
    assert fast.traced is not None
    for name in ("layer3.0.conv2", "layer2.0.downsample.0", "fc"):
        (target,) = filter_targets(model, "local", [name])
        fast.focus(target)
        assert fast._suffix is not None and len(fast._suffix.nodes) < len(list(fast.traced.graph.nodes))
        assert run_filter(fast, target, "pulse", 6) == run_filter(slow, target, "pulse", 6)


def test_adaptive_mode_crafts_against_each_filtered_model():
    model, x, y = _toy_data()
    calls = []

    def craft(net, xs, ys):
        calls.append(1)
        return _fgsm(0.02)(net, xs, ys)

    run = FilterRun(model, x, y, craft=craft, adversarial="adaptive")
    (target,) = filter_targets(model, "local", ["carry"])
    before = len(calls)
    rows = run_filter(run, target, "high-pass", 4)
    assert len(calls) - before == sum(1 for r in rows if r["removed"] > 0)


def test_bad_inputs_are_refused():
    model, x, y = _toy_data()
    with pytest.raises(ConfigError, match="no Conv/Linear layer"):
        filter_targets(nn.Sequential(nn.ReLU()), "local")
    with pytest.raises(UnknownNameError, match="unknown scope"):
        filter_targets(model, "diagonal")
    with pytest.raises(ConfigError, match="needs the model's weights at initialisation"):
        run_filter(FilterRun(model, x, y), filter_targets(model, "local")[0], "reset", 3)
    other = nn.Linear(D + 1, K)
    with pytest.raises(ShapeMismatchError, match="not the same architecture"):
        check_init_state(model, {"carry.weight": other.weight, "carry.bias": other.bias},
                         filter_targets(model, "local", ["carry"]))
    with pytest.raises(ShapeMismatchError, match="has no 'idle.weight'"):
        check_init_state(model, {}, filter_targets(model, "local", ["idle"]))
    with pytest.raises(ConfigError, match="unknown adversarial mode"):
        FilterRun(model, x, y, adversarial="sometimes")
