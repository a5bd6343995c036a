"""Watermark keys: creation, messages, exact regeneration, files, and every bad input."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnforensics.errors import (
    ConfigError,
    CorruptFileError,
    InvalidWeightsError,
    ShapeMismatchError,
    UnknownNameError,
)
from nnforensics.models.factory import create_model
from nnforensics.watermark import (
    decode_message,
    extract,
    extract_bits,
    key_matrix,
    load_key,
    make_key,
    mean_filter,
    message_bits,
    projections,
    save_key,
    watermark_ber,
    watermark_loss,
)
from nnforensics.watermark.key import KEY_FORMAT, matrix_digest


@pytest.fixture(scope="module")
def lenet():
    """An untrained LeNet (conv1 (6, 1, 5, 5), conv2 (16, 6, 5, 5), fc1 (120, 400) ...)."""
    return create_model("lenet", {"width": 1.0}, seed=0)


# ----------------------------------------------------------------- the scheme itself

def test_w_is_the_mean_over_output_filters(lenet):
    key, _ = make_key(lenet, "conv2", 64, seed=3)
    weight = lenet.model.conv2.weight.detach()
    assert key.length == 6 * 5 * 5 and key.weight_shape == (16, 6, 5, 5) and key.filter_axis == 0
    w = weight.double().mean(0).flatten()
    assert torch.allclose(mean_filter(weight.double()), w)
    assert torch.allclose(projections(lenet, key), key.matrix.double() @ w)
    assert np.array_equal(extract_bits(lenet, key), (torch.sigmoid(key.matrix.double() @ w) > 0.5).numpy())
    linear, _ = make_key(lenet, "fc1", 64, seed=3)
    assert linear.length == 400  # a Linear: len(w) = in_features


def test_loss_is_lambda_times_bce_summed_over_bits(lenet):
    key, _ = make_key(lenet, "fc1", 32, seed=5, strength=0.25)
    model = lenet.model
    value = watermark_loss(key)(model)
    y = torch.sigmoid(key.matrix @ model.fc1.weight.mean(0))
    by_hand = 0.25 * F.binary_cross_entropy(y, key.target, reduction="sum")
    assert float(value.detach()) == pytest.approx(float(by_hand.detach()), rel=1e-5)
    value.backward()
    grads = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert grads == {"fc1.weight"}
    model.zero_grad(set_to_none=True)


def test_order_of_the_layers_own_filters_does_not_matter_but_its_inputs_do(lenet):
    key, _ = make_key(lenet, "conv2", 64, seed=8)
    base = extract_bits(lenet, key)
    model = create_model("lenet", {"width": 1.0}, seed=0).model
    with torch.no_grad():
        model.conv2.weight.copy_(model.conv2.weight[torch.randperm(16, generator=torch.Generator().manual_seed(0))])
    assert np.array_equal(extract_bits(model, key), base)  # output filters reordered: same w
    with torch.no_grad():
        model.conv2.weight.copy_(model.conv2.weight[:, [5, 4, 3, 2, 1, 0]])
    assert not np.array_equal(extract_bits(model, key), base)  # input channels reordered: w scrambled


def test_watermark_ber_counts_wrong_bits(lenet):
    key, _ = make_key(lenet, "fc1", 40, seed=2)
    truth = extract_bits(lenet, key)
    flipped = truth.copy()
    flipped[:10] ^= 1
    own = dataclasses.replace(key, bits=tuple(int(b) for b in truth))
    assert watermark_ber(lenet, own) == 0.0
    assert watermark_ber(lenet, dataclasses.replace(key, bits=tuple(int(b) for b in flipped))) == 25.0
    assert watermark_ber(lenet.model, own) == extract(lenet, own).ber == 0.0  # module or loaded model


# ----------------------------------------------------------------- exact regeneration

def test_key_matrix_stream_is_pinned():
    """X is defined by (seed, T, len(w)) alone: these values must never change."""
    x = key_matrix(1234, 3, 4)
    assert x.dtype == torch.float32 and x.shape == (3, 4)
    assert matrix_digest(x) == GOLDEN_DIGEST
    assert x[0].tolist() == pytest.approx(GOLDEN_ROW, abs=0)


GOLDEN_DIGEST = "064b9223198bc5a86e9a511186c86da893c8c19c92913e4722cceea27137c6b4"
GOLDEN_ROW = [-0.74057936668396, -0.09745863080024719, 1.4561818838119507, -0.39162057638168335]


def test_regeneration_ignores_global_random_state():
    torch.manual_seed(1)
    np.random.seed(1)
    a = key_matrix(99, 8, 50)
    torch.manual_seed(2)
    np.random.seed(2)
    torch.randn(100)
    assert torch.equal(a, key_matrix(99, 8, 50))
    assert not torch.equal(a, key_matrix(100, 8, 50))
    assert torch.equal(key_matrix(99, 4, 50), a[:4])  # rows are drawn in order: T only truncates


def test_round_trip(tmp_path, lenet):
    key, note = make_key(lenet, "conv2", 48, seed=7, message="forensics", strength=0.3)
    assert "only its first 48" in note  # 9 bytes = 72 bits
    path = save_key(tmp_path / "k.json", key)
    again = load_key(path)
    assert again == key and again.digest == key.digest
    assert torch.equal(again.matrix, key.matrix)
    assert again.to_dict() == key.to_dict()
    raw = json.loads(path.read_text())
    assert raw["format"] == KEY_FORMAT and raw["matrix"]["seed"] == 7 and len(raw["bits"]) == 48
    assert not list(tmp_path.glob(".nnf-tmp-*"))  # written atomically


def test_fresh_keys_are_secret_and_different(lenet):
    a, _ = make_key(lenet, "fc1")
    b, _ = make_key(lenet, "fc1")
    assert a.seed != b.seed and not torch.equal(a.matrix, b.matrix)
    assert a.n_bits == 64 and a.strength == 0.1 and a.message_kind == "random"


# ----------------------------------------------------------------- messages

def test_message_bits_text_and_hex():
    assert message_bits("A") == [0, 1, 0, 0, 0, 0, 0, 1]
    assert message_bits("0xA5") == [1, 0, 1, 0, 0, 1, 0, 1]
    assert message_bits("0Xf") == [1, 1, 1, 1]
    assert len(message_bits("é")) == 16  # UTF-8: two bytes
    assert decode_message(message_bits("hé!"), "text") == "hé!"
    assert decode_message(message_bits("0xbeef"), "hex") == "0xbeef"
    for bad in ("", "0x", "0xZZ", "0x12 "):
        with pytest.raises(ConfigError, match="message"):
            message_bits(bad)


def test_message_padding_and_truncation_are_explicit(lenet):
    key, note = make_key(lenet, "fc1", 64, seed=1, message="hi")
    assert key.bits[:16] == tuple(message_bits("hi")) and set(key.bits[16:]) == {0}
    assert "padded with 48 zero bits" in note and key.message() == "hi"
    key, note = make_key(lenet, "fc1", 24, seed=1, message="0xdeadbeef")
    assert key.bits == tuple(message_bits("0xdeadbe")) and "only its first 24" in note
    assert key.message() == "0xdeadbe" and key.message_kind == "hex"


# ----------------------------------------------------------------- bad inputs when making a key

def test_more_bits_than_weights_is_refused(lenet):
    with pytest.raises(ConfigError, match=r"T <= len\(w\).*at most 150 bits"):
        make_key(lenet, "conv2", 151)
    assert make_key(lenet, "conv2", 150, seed=0)[0].n_bits == 150


@pytest.mark.parametrize("bits", [0, -3, 2.5, True])
def test_bad_bit_counts(lenet, bits):
    with pytest.raises(ConfigError, match="number of watermark bits"):
        make_key(lenet, "fc1", bits)


@pytest.mark.parametrize("strength", [0, -0.1, math.nan, math.inf])
def test_bad_strength(lenet, strength):
    with pytest.raises(ConfigError, match="strength"):
        make_key(lenet, "fc1", 8, strength=strength)


def test_unknown_layer_lists_the_valid_ones(lenet):
    with pytest.raises(UnknownNameError) as info:
        make_key(lenet, "fc9")
    assert info.value.valid == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert "valid watermark layers: conv1, conv2, fc1" in str(info.value)


# ----------------------------------------------------------------- a key that does not fit the model

def test_key_for_another_layer(lenet):
    vgg = create_model("vgg11_bn", {"width": 0.125, "in_channels": 1, "num_classes": 10}, seed=0)
    key, _ = make_key(vgg, "features.11", 64, seed=0)
    with pytest.raises(ShapeMismatchError, match=r"key is for layer 'features.11' with weight shape "
                                                 r"\(32, 32, 3, 3\).*no such layer.*conv1 \(6, 1, 5, 5\)"):
        extract(lenet, key)


def test_key_for_another_weight_shape(lenet):
    narrow = create_model("lenet", {"width": 0.5}, seed=0)
    key, _ = make_key(narrow, "fc1", 64, seed=0)
    with pytest.raises(ShapeMismatchError, match=r"weight shape \(60, 200\).*model's 'fc1' has weight shape "
                                                 r"\(120, 400\)"):
        extract(lenet, key)
    with pytest.raises(ShapeMismatchError):
        watermark_loss(key)(lenet.model)


def test_nan_weights_are_refused(lenet):
    key, _ = make_key(lenet, "fc1", 64, seed=0)
    model = create_model("lenet", {"width": 1.0}, seed=0).model
    with torch.no_grad():
        model.fc1.weight[3, 7] = float("nan")
    with pytest.raises(InvalidWeightsError, match="fc1"):
        extract(model, key)


# ----------------------------------------------------------------- bad key files

@pytest.fixture
def key_file(tmp_path, lenet) -> Path:
    key, _ = make_key(lenet, "conv2", 64, seed=11)
    return save_key(tmp_path / "key.json", key)


def _edit(path: Path, change) -> Path:
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))
    return path


def test_truncated_key_file(key_file):
    key_file.write_bytes(key_file.read_bytes()[: len(key_file.read_bytes()) // 2])
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        load_key(key_file)


@pytest.mark.parametrize("content,match", [
    (b"", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\xff", "not text"),
    (b"[1, 2, 3]", "no format tag"),
    (b'{"format": "nnforensics-permutation/1", "groups": {}}', "format tag 'nnforensics-permutation/1'.*not a watermark key"),
    (b'{"format": "nnforensics-watermark/9"}', "another version"),
])
def test_corrupt_key_files(tmp_path, content, match):
    path = tmp_path / "key.json"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match=match):
        load_key(path)


def test_missing_key_file(tmp_path):
    with pytest.raises(ConfigError, match="key file not found"):
        load_key(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="directory"):
        load_key(tmp_path)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_in_key_is_refused(key_file, literal):
    text = key_file.read_text().replace('"strength": 0.1', f'"strength": {literal}')
    assert literal in text
    key_file.write_text(text)
    with pytest.raises(CorruptFileError, match=f"non-finite number {literal}"):
        load_key(key_file)


@pytest.mark.parametrize("change,match", [
    (lambda r: r.update(layer=""), "'layer'"),
    (lambda r: r.update(weight_shape=[16, -6, 5, 5]), "'weight_shape'"),
    (lambda r: r.update(filter_axis=7), "'filter_axis'"),
    (lambda r: r.update(bits="0120"), "'bits'"),
    (lambda r: r.update(strength="strong"), "'strength'"),
    (lambda r: r.update(message={"kind": "poem", "length": 3}), "'message'"),
    (lambda r: r.pop("matrix"), "'matrix'"),
    (lambda r: r["matrix"].update(generator="torch.randn"), "generator"),
    (lambda r: r["matrix"].update(seed=-1), "seed"),
    (lambda r: r["matrix"].update(sha256="xyz"), "sha256"),
    (lambda r: r["matrix"].update(shape=[64, 99]), "shape"),
    (lambda r: r.update(bits="1" * 151, matrix={**r["matrix"], "shape": [151, 150]}), r"T <= len\(w\)"),
    (lambda r: r.update(weight_shape=[2, 100000, 100], matrix={**r["matrix"], "shape": None}), "implausibly large"),
    (lambda r: r["matrix"].update(seed=r["matrix"]["seed"] + 1), "does not match the key's checksum"),
    (lambda r: r["matrix"].update(sha256="0" * 64), "does not match the key's checksum"),
    (lambda r: r.update(scheme="spread-spectrum"), "scheme"),
])
def test_malformed_keys(key_file, change, match):
    _edit(key_file, change)
    with pytest.raises(CorruptFileError, match=match) as info:
        load_key(key_file)
    assert str(key_file) in str(info.value)


@pytest.mark.parametrize("depth", [100, 100_000])  # parseable but absurd; deep enough to crash Python's parser
def test_deeply_nested_key_file_is_refused_clearly(tmp_path, depth):
    path = tmp_path / "key.json"
    path.write_text('{"format": "nnforensics-watermark/1", "layer": ' + "[" * depth + "]" * depth + "}")
    with pytest.raises(CorruptFileError, match=r"key file .* is nested too deeply"):
        load_key(path)


def test_deeply_nested_key_file_exits_1_from_the_cli(run_cli, tmp_path):
    path = tmp_path / "key.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    result = run_cli("watermark", "extract", tmp_path / "m.safetensors", "--key", path)
    assert result.code == 1 and result.err.startswith("error: key file") and "nested too deeply" in result.err
    assert len(result.err.splitlines()) == 1
