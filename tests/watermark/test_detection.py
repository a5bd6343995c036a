"""The binomial p-value and the detection threshold, against exact hand computations."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import pytest

from nnforensics.errors import ConfigError
from nnforensics.models.factory import create_model
from nnforensics.watermark import (
    detection_threshold,
    extract,
    extract_bits,
    make_key,
    min_bits,
    p_value,
)


def exact_tail(matched: int, n: int) -> Fraction:
    """P(Binomial(n, 1/2) >= matched), exactly."""
    return Fraction(sum(math.comb(n, k) for k in range(max(matched, 0), n + 1)), 2**n)


@pytest.mark.parametrize("n", [1, 8, 20, 64, 256])
def test_p_value_is_the_binomial_tail(n):
    for matched in sorted({0, 1, n // 2, (3 * n) // 4, n - 1, n}):
        assert p_value(matched, n) == pytest.approx(float(exact_tail(matched, n)), rel=1e-12, abs=0)
    assert p_value(0, n) == 1.0
    assert p_value(n, n) == 2.0 ** -n


def test_hand_computed_values():
    # 64 bits: all match -> 2^-64; 51 or more -> sum_{k>=51} C(64, k) / 2^64 = 9.4e-7 (< 1e-6), 50 -> 3.5e-6.
    assert p_value(64, 64) == pytest.approx(5.421010862427522e-20)
    assert p_value(51, 64) == pytest.approx(9.404810782e-07, rel=1e-8)
    assert p_value(50, 64) == pytest.approx(3.534743771e-06, rel=1e-8)
    assert p_value(32, 64) == pytest.approx(0.5496734, rel=1e-6)


@pytest.mark.parametrize("n,fpr", [(64, 1e-6), (64, 0.05), (64, 1e-12), (20, 1e-6), (128, 1e-9), (32, 0.01)])
def test_threshold_is_the_smallest_count_within_the_fpr(n, fpr):
    t = detection_threshold(n, fpr)
    assert exact_tail(t, n) <= Fraction(fpr)
    assert exact_tail(t - 1, n) > Fraction(fpr)


def test_threshold_of_the_default_setting():
    assert detection_threshold(64) == 51


def test_unreachable_fpr_is_refused():
    assert min_bits(1e-6) == 20 and min_bits(0.5) == 1 and min_bits(0.4) == 2
    detection_threshold(20, 1e-6)  # 2^-20 = 9.5e-7 <= 1e-6
    with pytest.raises(ConfigError, match=r"19-bit watermark can never be detected.*2\^-19.*at least 20 bits"):
        detection_threshold(19, 1e-6)


@pytest.mark.parametrize("fpr", [0, 1, -0.5, 1.5, math.nan, math.inf, True, "0.1"])
def test_bad_fpr(fpr):
    with pytest.raises(ConfigError, match="false-positive rate"):
        detection_threshold(64, fpr)


def test_detected_exactly_at_the_threshold():
    model = create_model("lenet", {"width": 1.0}, seed=0)
    key, _ = make_key(model, "fc1", 64, seed=4)
    carried = [int(b) for b in extract_bits(model, key)]
    threshold = detection_threshold(64)

    def with_errors(k: int):
        bits = tuple(1 - b if i < k else b for i, b in enumerate(carried))
        return extract(model, dataclasses.replace(key, bits=bits))

    exact = with_errors(0)
    assert (exact.ber, exact.matched, exact.detected, exact.threshold) == (0.0, 64, True, 51)
    at = with_errors(64 - threshold)
    assert at.matched == threshold and at.detected and at.p_value <= 1e-6
    below = with_errors(64 - threshold + 1)
    assert below.matched == threshold - 1 and not below.detected and below.p_value > 1e-6
    assert below.ber == pytest.approx(100 * 14 / 64)
    looser = extract(model, key, fpr=0.5)  # P(X >= 32) = 0.55 > 0.5, P(X >= 33) = 0.45
    assert looser.threshold == 33 and looser.fpr == 0.5
    with pytest.raises(ConfigError, match="never be detected"):
        extract(model, dataclasses.replace(key, bits=key.bits[:10]), fpr=1e-6)
