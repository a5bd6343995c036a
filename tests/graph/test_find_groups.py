"""Permutation groups of varied structures: found, complete, and function-preserving."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnforensics.errors import UnsupportedModelError
from nnforensics.graph import find_groups
from nnforensics.permutation import permute
from nnforensics.resynchronization import resync

from .archs import BertMini, Cumulative, DenseMini, GroupedMini, ResNetMini, Untraceable, ViTMHA, bert_inputs

CASES = {
    "resnet": (ResNetMini, lambda: torch.rand(2, 3, 8, 8)),
    "dense": (DenseMini, lambda: torch.rand(2, 3, 8, 8)),
    "grouped": (GroupedMini, lambda: torch.rand(2, 3, 8, 8)),
    "bert": (BertMini, bert_inputs),
    "vit": (ViTMHA, lambda: torch.rand(2, 3, 16, 16)),
}


def _randomise_bn(model):
    """Non-trivial running statistics so that forgetting to permute them would show."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model


@pytest.mark.parametrize("case", sorted(CASES))
def test_permuting_all_groups_preserves_function_and_lap_restores(case):
    factory, make_inputs = CASES[case]
    torch.manual_seed(0)
    model = _randomise_bn(factory()).eval()
    inputs = make_inputs()
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    result = permute(model, seed=3, example_inputs=inputs)
    assert result.relative_output_diff < 1e-5
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, result.model.state_dict()[k])]
    assert changed, "permutation changed nothing"
    back = resync(model, result.model, method="lap", truth=result.perms, example_inputs=inputs, group_set=result.group_set)
    assert back.psi == 100.0
    for key, value in model.state_dict().items():
        assert torch.equal(value, back.model.state_dict()[key]), key


def test_resnet_groups_share_the_residual_stream():
    gs = find_groups(ResNetMini().eval(), torch.rand(2, 3, 8, 8))
    by_layer = {g.layer: g for g in gs}
    stream = by_layer["conv1"]
    names = {m.name for m in stream.members}
    # stem, first block output and its BatchNorm statistics move together; fc input axis is never touched
    assert {"conv1.weight", "bn1.running_mean", "bn1.running_var", "a2.weight", "abn2.weight", "a1.weight"} <= names
    stage2 = gs[gs.for_layer("down.0")]
    assert {"down.0.weight", "b2.weight", "fc.weight"} <= {m.name for m in stage2.members}
    assert all(not (m.name == "fc.weight" and m.axis == 0) for g in gs for m in g.members)
    assert all(not (m.name == "conv1.weight" and m.axis == 1) for g in gs for m in g.members)


def test_concatenation_gives_offset_blocks_and_flatten_blocks():
    gs = find_groups(DenseMini().eval(), torch.rand(2, 3, 8, 8))
    g2 = gs[gs.for_layer("c2")]
    c3_in = next(m for m in g2.members if m.name == "c3.weight" and m.axis == 1)
    assert c3_in.index[:, 0].tolist() == list(range(4, 10))  # after c1's 4 channels
    fc_in = next(m for m in g2.members if m.name == "fc.weight")
    assert fc_in.index.shape == (6, 16)  # each channel is a 4x4 block of fc inputs
    assert fc_in.index[0].tolist() == list(range(4 * 16, 5 * 16))


def test_grouped_and_depthwise_convolutions():
    gs = find_groups(GroupedMini().eval(), torch.rand(2, 3, 8, 8))
    kinds = {g.name: g.kind for g in gs}
    # GroupNorm's 4 groups of 2 channels: the channels feeding it move as blocks...
    assert any(k == "blocks" for k in kinds.values())
    # ...and the depthwise conv's outputs follow its inputs: same group as `expand`.
    g = gs[gs.for_layer("expand")]
    assert {"dw.weight", "gn.weight"} <= {m.name for m in g.members}


def test_attention_heads_and_within_head_groups():
    gs = find_groups(ViTMHA().eval(), torch.rand(2, 3, 16, 16))
    heads = [g for g in gs if g.kind == "blocks"]
    assert len(heads) == 2 and all(g.size == 3 for g in heads)
    within = [g for g in gs if g.parent == heads[0].name]
    assert len(within) == 6 and all(g.size == 8 for g in within)  # 3 heads x (q/k dims, v/out dims)
    bert = find_groups(BertMini().eval(), bert_inputs())
    bert_heads = [g for g in bert if g.kind == "blocks"]
    assert len(bert_heads) == 2 and all(g.size == 4 for g in bert_heads)
    qk = [g for g in bert if g.parent == bert_heads[0].name and {m.name.split(".")[-2] for m in g.members} >= {"query", "key"}]
    assert len(qk) == 4


def test_unsupported_operation_is_named():
    with pytest.raises(UnsupportedModelError, match="pixel_shuffle"):
        find_groups(Untraceable().eval(), torch.rand(2, 3, 8, 8))
    loose = find_groups(Untraceable().eval(), torch.rand(2, 3, 8, 8), strict=False)
    assert all("c.weight" not in {m.name for m in g.members} for g in loose)


def test_order_dependent_operation_freezes_its_axis():
    gs = find_groups(Cumulative().eval(), torch.rand(2, 3, 8, 8))
    assert [g.layer for g in gs] == ["d"]  # c's channels feed a cumulative sum: not permutable


def test_group_names_and_unknown_group():
    gs = find_groups(ResNetMini().eval(), torch.rand(2, 3, 8, 8))
    assert len(set(gs.names())) == len(gs)
    with pytest.raises(Exception, match="unknown group"):
        gs["nope"]
    assert np.all(np.diff([g.order for g in gs]) > 0)


class _PReLUNet(torch.nn.Module):
    """Conv -> PReLU (one learned slope per channel) -> Linear: the slope follows its channel."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3)
        self.act = torch.nn.PReLU(6)
        self.fc = torch.nn.Linear(6 * 6 * 6, 4)

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).flatten(1))


def test_prelu_slopes_are_permuted_with_their_channels():
    torch.manual_seed(0)
    model = _PReLUNet().eval()
    with torch.no_grad():  # distinct slopes, so that a slope left behind changes the output
        model.act.weight.copy_(torch.linspace(-0.5, 0.9, 6))
    inputs = torch.rand(2, 3, 8, 8)
    groups = find_groups(model, inputs)
    conv = next(g for g in groups if g.layer == "conv")
    assert {f"{m.name}[{m.axis}]" for m in conv.members} == {"conv.weight[0]", "conv.bias[0]", "act.weight[0]",
                                                             "fc.weight[1]"}
    result = permute(model, example_inputs=inputs, group_set=groups, seed=1)
    assert result.relative_output_diff < 1e-6
