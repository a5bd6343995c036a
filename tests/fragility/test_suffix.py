"""The cached-prefix forward pass equals a full forward pass, or declines to run."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from nnforensics.fragility.suffix import SuffixForward, trace_or_none


class Tied(nn.Module):
    """``b`` shares ``a``'s weight on a parallel branch."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.fc = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.fc(torch.relu(self.a(x)) + self.b(x))


class Attention(nn.Module):
    """A Linear inside nn.MultiheadAttention, which torch.fx calls as one module."""

    def __init__(self):
        super().__init__()
        self.proj, self.mha, self.fc = nn.Linear(8, 8), nn.MultiheadAttention(8, 2, batch_first=True), nn.Linear(8, 3)

    def forward(self, x):
        h = self.proj(x).unsqueeze(1)
        return self.fc(self.mha(h, h, h, need_weights=False)[0].squeeze(1))


class InPlace(nn.Module):
    """``out.add_(...)`` writes the changing branch into a tensor computed before it."""

    def __init__(self):
        super().__init__()
        self.a, self.down, self.fc = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.act, self.skip = nn.ReLU(inplace=True), nn.Identity()

    def forward(self, x):
        out = self.a(x)
        out.add_(self.down(x))
        return self.fc(self.act(self.skip(out)))


CASES = [(Tied, ["a"]), (Attention, ["mha.out_proj"]), (Attention, ["proj"]), (InPlace, ["down"]),
         (InPlace, ["fc"]), (InPlace, ["a"])]


@pytest.mark.parametrize("cls, layers", CASES, ids=[f"{c.__name__}-{'+'.join(l)}" for c, l in CASES])
def test_suffix_equals_the_full_pass_after_the_weights_change(cls, layers):
    torch.manual_seed(0)
    model = cls().eval()
    x = torch.randn(16, 8)
    traced = trace_or_none(model)
    assert traced is not None
    modules = [model.get_submodule(name) for name in layers]
    tensors = [t for m in modules for t in (m.weight, m.bias) if t is not None]
    suffix = SuffixForward(traced, tensors, [x[:10], x[10:]])
    with torch.no_grad():
        for m in modules:
            m.weight.mul_(-0.5)
        expected = model(x)
    if suffix.usable:
        assert torch.equal(torch.cat([suffix.forward(0), suffix.forward(1)]), expected)
    else:  # it may decline, never answer wrongly
        assert cls is InPlace and layers != ["fc"]


def test_suffix_recomputes_only_downstream_nodes():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    traced = trace_or_none(model)
    suffix = SuffixForward(traced, [model[4].weight, model[4].bias], [torch.randn(5, 4)])
    assert suffix.usable and [n.op for n in suffix.nodes] == ["call_module", "output"]
