"""Uchida's watermark on networks trained on real MNIST, and its recovery (paper Fig. 7).

Two networks: LeNet (watermark on the Linear ``fc1``, fed by ``conv2``) and a narrow
VGG-11-BN (watermark on the middle conv ``features.11``, fed by ``features.8``); see
:mod:`.cases`. Accuracies are top-1 on the full 10k MNIST test set.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnforensics.permutation import permute
from nnforensics.watermark import extract, verify, watermark_ber

from ..core.trained import trained

ARCHS = ["lenet", "vgg11_bn"]
PERM_SEEDS = (0, 1, 2)


@pytest.mark.parametrize("arch", ARCHS)
def test_embedding_gives_ber_zero_at_no_accuracy_cost(case, arch):
    c = case(arch)
    assert c.stats["eval_n"] == 10000
    assert c.stats["ber"] == 0.0 and c.stats["detected"]
    assert c.stats["p_value"] == pytest.approx(2.0 ** -64)
    # the saved model reads back the same
    assert extract(c.marked, c.key).ber == 0.0
    # Against the same one-epoch fine-tuning without the regulariser: within 1 point.
    assert abs(c.stats["accuracy_marked"] - c.stats["accuracy_control"]) <= 1.0, c.stats
    # And no worse than the model before embedding (the fine-tuning itself helps these short-trained nets).
    assert c.stats["accuracy_marked"] >= c.stats["accuracy_original"] - 1.0, c.stats
    # the key is not recorded in the model file, only that a watermark was embedded
    entry = c.marked.meta.history[-1]
    assert entry["op"] == "watermark" and c.key.layer not in str(entry)


@pytest.mark.parametrize("arch", ARCHS)
def test_permuting_the_previous_layer_hides_the_mark_and_resync_restores_it(case, arch):
    c = case(arch)
    from nnforensics.graph import example_inputs_for, find_groups

    gs = find_groups(c.marked.model, example_inputs_for(c.marked.meta))
    bers = []
    for seed in PERM_SEEDS:
        attacked = permute(c.marked, groups=[gs.for_layer(c.previous)], seed=seed, group_set=gs)
        assert attacked.relative_output_diff < 1e-4  # same function
        raw = extract(attacked.model, c.key)
        assert not raw.detected, raw
        bers.append(raw.ber)
        result = verify(attacked.model, c.marked, c.key, group_set=gs)
        assert result.raw.ber == raw.ber
        assert result.resynchronized.ber == 0.0 and result.resynchronized.detected
        assert result.permuted_groups == 1 and result.unambiguous == 100.0
    # Near chance. A draw leaving channels in place keeps part of w (LeNet, seed 2: 3 of conv2's
    # 16 channels fixed, BER 30 %), hence a bound on the mean over seeds rather than on each.
    assert all(15 <= b <= 85 for b in bers), bers
    assert 30 <= np.mean(bers) <= 70, bers


@pytest.mark.parametrize("arch", ARCHS)
def test_permuting_the_marked_layer_itself_keeps_the_mark(case, arch):
    """w averages over the layer's output filters, so their order does not matter."""
    c = case(arch)
    from nnforensics.graph import example_inputs_for, find_groups

    gs = find_groups(c.marked.model, example_inputs_for(c.marked.meta))
    attacked = permute(c.marked, groups=[gs.for_layer(c.layer)], seed=4, group_set=gs)
    assert extract(attacked.model, c.key).ber == 0.0


def test_every_layer_permuted_then_resync(case):
    c = case("vgg11_bn")
    attacked = permute(c.marked, seed=9)
    assert watermark_ber(attacked.model, c.key) > 20
    result = verify(attacked.model, c.marked, c.key)
    assert result.resynchronized.ber == 0.0 and result.permuted_groups == len(attacked.perms)


def test_unrelated_model_is_not_detected(case):
    c = case("lenet")
    other = trained("lenet", 1.0, seed=1)  # same architecture, trained from another seed, no mark
    raw = extract(other, c.key)
    assert not raw.detected and 20 <= raw.ber <= 80, raw
    # re-synchronizing an unrelated model to the original cannot manufacture the mark
    result = verify(other, c.marked, c.key)
    assert not result.resynchronized.detected and result.resynchronized.ber > 20
    assert result.unambiguous < 60  # and the matching itself says the two are unrelated
