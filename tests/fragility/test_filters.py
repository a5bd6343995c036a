"""Each filter removes exactly the weights its definition names."""

from __future__ import annotations

import pytest
import torch

from nnforensics.errors import ConfigError, UnknownNameError
from nnforensics.fragility.filters import check_filters, check_thresholds, removal_mask, threshold_sweep

#: 0..10 in a shuffled order: weight value v sits at a known position.
VALUES = torch.tensor([[3.0, 7.0, 0.0, 10.0], [5.0, 1.0, 9.0, 2.0], [6.0, 4.0, 8.0, 8.0]])


def _masks(kind: str, n: int, weight: torch.Tensor = VALUES) -> list[torch.Tensor]:
    steps = threshold_sweep(kind, float(weight.min()), float(weight.max()), n)
    return [removal_mask(weight, kind, step, step.index == n - 1) for step in steps]


def test_high_pass_zeroes_every_weight_at_or_below_the_threshold():
    steps = threshold_sweep("high-pass", 0.0, 10.0, 11)  # alpha = 0, 1, ..., 10
    assert [s.alpha for s in steps] == pytest.approx(list(range(11)))
    counts = [int(m.sum()) for m in _masks("high-pass", 11)]
    assert counts == [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12]  # 8 appears twice
    assert [s.t for s in steps] == pytest.approx([k / 10 for k in range(11)])
    mask = _masks("high-pass", 11)[4]
    assert torch.equal(mask, VALUES <= 4)


def test_low_pass_zeroes_every_weight_at_or_above_the_threshold():
    steps = threshold_sweep("low-pass", 0.0, 10.0, 11)  # alpha = 10, 9, ..., 0
    assert [s.alpha for s in steps] == pytest.approx(list(range(10, -1, -1)))
    assert [s.t for s in steps] == pytest.approx([k / 10 for k in range(11)])
    counts = [int(m.sum()) for m in _masks("low-pass", 11)]
    assert counts == [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert torch.equal(_masks("low-pass", 11)[3], VALUES >= 7)


def test_pulse_windows_tile_the_range_without_overlap():
    weight = torch.randn(64, 33, generator=torch.Generator().manual_seed(0))
    masks = torch.stack(_masks("pulse", 25, weight))
    assert torch.equal(masks.sum(0), torch.ones_like(weight, dtype=torch.long))  # each weight in exactly one window
    steps = threshold_sweep("pulse", float(weight.min()), float(weight.max()), 25)
    for a, b in zip(steps, steps[1:]):
        assert a.high == b.low  # shared edges: no gap
    assert steps[0].low == float(weight.min()) and steps[-1].high == float(weight.max())
    assert [s.t for s in steps] == pytest.approx([(k + 0.5) / 25 for k in range(25)])


def test_pulse_counts_on_known_values():
    # range 0..10 in 5 windows of width 2: [0,2) [2,4) [4,6) [6,8) [8,10]
    counts = [int(m.sum()) for m in _masks("pulse", 5)]
    assert counts == [2, 2, 2, 2, 4]
    assert torch.equal(_masks("pulse", 5)[2], (VALUES >= 4) & (VALUES < 6))


def test_reset_interpolates_to_the_initial_weights():
    steps = threshold_sweep("reset", 0.0, 1.0, 4)
    assert [s.alpha for s in steps] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    with pytest.raises(ConfigError, match="does not remove weights by value"):
        removal_mask(VALUES, "reset", steps[0], False)


def test_filter_and_threshold_validation():
    assert check_filters(None) == ["high-pass", "low-pass", "pulse"]
    assert check_filters("all") == ["high-pass", "low-pass", "pulse", "reset"]
    assert check_filters("pulse, high-pass,pulse") == ["pulse", "high-pass"]
    with pytest.raises(UnknownNameError, match="unknown filter 'band-pass'"):
        check_filters("band-pass")
    for bad in (1, 0, -3, 2.5, True, "25"):
        with pytest.raises(ConfigError, match="at least two points"):
            check_thresholds(bad)
