"""ShuffleNetV2's channel shuffle (view/transpose/view) and ``chunk``: the groups follow each unit.

After ``shuffle(cat(x1, branch2(x2)))`` a branch's output units are interleaved with the
identity half, and the next unit sends half of them on unchanged (``chunk``) and half
into its convolution. Units are only interchangeable when they reach the same consumers;
the positions below were worked out by hand for the network in ``ShuffleMini``.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
import torch.nn as nn

from nnforensics.graph import apply_group, find_groups, state_tensors
from nnforensics.models.shufflenet import InvertedResidual
from nnforensics.permutation import permute
from nnforensics.resynchronization import resync


class ShuffleMini(nn.Module):
    """Stem (4 channels), a stride-2 unit (4 -> 8) and two stride-1 units, 1x1 head, Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.units = nn.Sequential(InvertedResidual(4, 8, 2), InvertedResidual(8, 8, 1), InvertedResidual(8, 8, 1))
        self.head = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.units(self.stem(x))).mean((2, 3)))


def _model() -> ShuffleMini:
    torch.manual_seed(0)
    model = ShuffleMini().eval()
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():  # statistics that would show a BatchNorm left behind
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model


def _inputs() -> torch.Tensor:
    return torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))


def _positions(group, name: str, axis: int) -> list[int]:
    member = next(m for m in group.members if m.name == name and m.axis == axis)
    return member.index.reshape(-1).tolist()


def _signature(groups) -> set[tuple]:
    """(producer, its rows, consumer, the consumer's input positions) of every plain group."""
    out = set()
    for g in groups:
        if g.kind != "neurons":
            continue
        producer = f"{g.layer}.weight"
        consumers = [m for m in g.members if m.axis == 1 and m.name.endswith(".weight")]
        for c in consumers:
            out.add((producer, tuple(_positions(g, producer, 0)), c.name, tuple(c.index.reshape(-1).tolist())))
    return out


def test_groups_follow_the_shuffled_channels():
    groups = find_groups(_model(), _inputs())
    # unit 0 output: [a0 b0 a1 b1 a2 b2 a3 b3] (a: branch1, b: branch2); unit 1 takes a2 b2 a3 b3 ...
    assert {
        ("units.0.branch1.2.weight", (2, 3), "units.1.branch2.0.weight", (0, 2)),
        ("units.0.branch2.5.weight", (2, 3), "units.1.branch2.0.weight", (1, 3)),
        # unit 1 output: [a0 c0 b0 c1 a1 c2 b1 c3]; unit 2 takes a1 c2 b1 c3, passes a0 c0 b0 c1 on
        ("units.1.branch2.5.weight", (0, 1), "head.weight", (2, 6)),
        ("units.1.branch2.5.weight", (2, 3), "units.2.branch2.0.weight", (1, 3)),
        # unit 2 output: [a0 d0 c0 d1 b0 d2 c1 d3]
        ("units.2.branch2.5.weight", (0, 1, 2, 3), "head.weight", (1, 3, 5, 7)),
    } <= _signature(groups)
    # a0, a1, b0, b1 each reach a consumer of their own: no group moves them
    owned = {(g.layer, p) for g in groups if g.kind == "neurons" for p in _positions(g, f"{g.layer}.weight", 0)}
    for layer in ("units.0.branch1.2", "units.0.branch2.5"):
        assert {(layer, 0), (layer, 1)}.isdisjoint(owned)


def test_permuting_every_group_keeps_the_function_and_lap_restores():
    model, x = _model(), _inputs()
    result = permute(model, seed=5, example_inputs=x)
    assert result.relative_output_diff < 1e-6
    assert any(not torch.equal(v, result.model.state_dict()[k]) for k, v in model.state_dict().items())
    back = resync(model, result.model, method="lap", truth=result.perms, example_inputs=x, group_set=result.group_set)
    assert back.psi == 100.0
    assert all(torch.equal(v, back.model.state_dict()[k]) for k, v in model.state_dict().items())


def test_ignoring_the_shuffle_would_change_the_function():
    """The same group with the head's inputs taken as contiguous (no shuffle) breaks the network."""
    model, x = _model(), _inputs()
    group = find_groups(model, x)["units.2.branch2.5"]
    naive = dataclasses.replace(group, members=[
        dataclasses.replace(m, index=np.arange(4, 8).reshape(4, 1)) if m.name == "head.weight" else m
        for m in group.members])
    perm = np.array([1, 0, 3, 2])
    with torch.no_grad():
        reference = model(x)
        for candidate, same in ((group, True), (naive, False)):
            net = copy.deepcopy(model)
            apply_group(state_tensors(net), candidate, perm)
            assert torch.allclose(net(x), reference, atol=1e-6) is same
