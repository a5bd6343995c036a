"""`nnf watermark embed / extract / verify` and `nnf train --watermark-layer`, run in-process."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from nnforensics.models.factory import create_model
from nnforensics.watermark import load_key, make_key, save_key

from ..core.trained import CACHE, trained

EXTRACT_KEYS = {"ber", "bits", "matched", "p_value", "detected", "threshold", "fpr", "layer"}


@pytest.fixture
def expect_error(run_cli):
    """``expect_error(*args, match=REGEX, code=1)``: exactly one ``error:`` line on stderr, no traceback."""
    def check(*args: object, match: str, code: int = 1) -> str:
        result = run_cli(*args)
        assert result.code == code, (result.code, result.err)
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.err
        assert re.search(match, lines[0]), lines[0]
        return lines[0]

    return check


@pytest.fixture
def lenet_file(tmp_path) -> Path:
    """A copy of the MNIST-trained LeNet (the CLI must never modify its input)."""
    trained("lenet", 1.0)
    return Path(shutil.copy(CACHE / "lenet-w1.0-s0-e1-n10000.safetensors", tmp_path / "lenet.safetensors"))


def test_embed_extract_permute_verify(run_cli, tmp_path, lenet_file):
    key, marked = tmp_path / "secret" / "key.json", tmp_path / "marked.safetensors"
    before = lenet_file.read_bytes()
    res = run_cli("watermark", "embed", lenet_file, "--data", "mnist", "--layer", "fc1", "--bits", "64",
                  "--message", "0xC0FFEE", "--limit", "10000", "--eval-limit", "1000", "--key-seed", "5",
                  "--key-out", key, "-o", marked, "--json")
    assert res.code == 0, res.err
    out = res.json()
    assert out["ber"] == 0.0 and out["detected"] and out["bits"] == 64 and out["layer"] == "fc1"
    assert out["eval_n"] == 1000 and abs(out["accuracy_after"] - out["accuracy_before"]) < 10
    assert len(out["notes"]) == 1 and "padded with 40 zero bits" in out["notes"][0]
    assert lenet_file.read_bytes() == before and key.is_file() and marked.is_file()
    assert load_key(key).seed == 5

    res = run_cli("watermark", "extract", marked, "--key", key, "--json")
    assert res.code == 0, res.err
    got = res.json()
    assert EXTRACT_KEYS <= set(got) and got["ber"] == 0 and got["detected"] and got["threshold"] == 51
    assert got["message"] == "0xc0ffee"
    res = run_cli("watermark", "extract", marked, "--key", key)
    assert res.code == 0 and "DETECTED" in res.out and "0xc0ffee" in res.out

    perm = tmp_path / "perm.safetensors"
    assert run_cli("permute", marked, "--groups", "conv2", "--seed", "1", "-o", perm).code == 0
    raw = run_cli("watermark", "extract", perm, "--key", key, "--json").json()
    assert not raw["detected"] and raw["ber"] > 20
    res = run_cli("watermark", "verify", perm, "--key", key, "--original", marked, "--json")
    assert res.code == 0, res.err
    v = res.json()
    assert v["raw"] == raw and not v["raw"]["detected"]
    assert v["resynchronized"]["ber"] == 0 and v["resynchronized"]["detected"] and v["detected"]
    assert v["psi_unknown"] is True and v["permuted_groups"] == 1 and v["method"] == "lap"
    res = run_cli("watermark", "verify", perm, "--key", key, "--original", marked, "--method", "argmax")
    assert res.code == 0 and "watermark DETECTED" in res.out and "re-synchronized" in res.out


def test_extract_and_verify_on_the_shared_case(run_cli, case):
    c = case("lenet")
    out = run_cli("watermark", "extract", c.marked_path, "--key", c.key_path, "--json", "--fpr", "1e-12").json()
    assert out["detected"] and out["fpr"] == 1e-12 and out["threshold"] == 59
    out = run_cli("watermark", "verify", c.marked_path, "--key", c.key_path, "--original", c.marked_path,
                  "--json").json()
    assert out["raw"]["ber"] == 0 and out["resynchronized"]["ber"] == 0 and out["permuted_groups"] == 0


def test_train_with_a_watermark(run_cli, tmp_path):
    out, key = tmp_path / "mlp.safetensors", tmp_path / "key.json"
    common = ["train", "--arch", "mlp", "--arch-arg", "width=0.25", "--data", "digits", "--epochs", "5",
              "--optimizer", "adam", "--lr", "3e-3", "--weight-decay", "0", "--schedule", "none", "-o", out]
    res = run_cli(*common, "--watermark-layer", "layers.3", "--watermark-bits", "24", "--key-out", key, "--json")
    assert res.code == 0, res.err
    wm = res.json()["watermark"]
    assert wm["key"] == str(key) and wm["bits"] == 24 and wm["layer"] == "layers.3"
    # 50 steps from scratch on 1,259 images, with a fresh random key each run: BER 0-12.5 % over
    # six keys measured, far below chance (50 %)
    assert wm["ber"] <= 25
    written = key.read_text()
    assert load_key(key).n_bits == 24
    ext = run_cli("watermark", "extract", out, "--key", key, "--json").json()
    assert ext["ber"] == wm["ber"]
    # --resume keeps the secret of the interrupted run (no checkpoint here: trains afresh, same key)
    res = run_cli(*common, "--watermark-layer", "layers.3", "--watermark-bits", "24", "--key-out", key,
                  "--resume", "--json")
    assert res.code == 0, res.err
    assert key.read_text() == written


def test_train_watermark_option_errors(expect_error, tmp_path):
    key = tmp_path / "key.json"
    common = ["train", "--arch", "mlp", "--arch-arg", "width=0.25", "--data", "digits", "--epochs", "1",
              "-o", tmp_path / "m.safetensors"]
    expect_error(*common, "--watermark-bits", "32", match="--watermark-bits only apply with --watermark-layer")
    expect_error(*common, "--watermark-layer", "layers.3", match="needs --key-out")
    expect_error(*common, "--watermark-layer", "fc1", "--key-out", key,
                 match="unknown watermark layer 'fc1'; valid watermark layers: layers.1, layers.3, layers.5")
    expect_error(*common, "--watermark-layer", "layers.3", "--watermark-bits", "65", "--key-out", key,
                 match=r"65 bits cannot be embedded in layer 'layers.3'.*only 64 entries.*T <= len\(w\)")
    key.write_text("{}")  # an existing key is never overwritten; on --resume it must be a valid key
    expect_error(*common, "--watermark-layer", "layers.3", "--key-out", key, match="already exists.*never overwritten")
    expect_error(*common, "--watermark-layer", "layers.3", "--key-out", key, "--resume", match="no format tag")
    assert not (tmp_path / "m.safetensors").exists()


def test_resume_with_another_watermark_is_refused(run_cli, expect_error, tmp_path):
    out, key = tmp_path / "m.safetensors", tmp_path / "key.json"
    common = ["train", "--arch", "mlp", "--arch-arg", "width=0.25", "--data", "digits", "--epochs", "1",
              "--limit", "200", "-o", out, "--key-out", key]
    assert run_cli(*common, "--watermark-layer", "layers.3", "--watermark-bits", "32", "--json").code == 0
    expect_error(*common, "--watermark-layer", "layers.3", "--watermark-bits", "40", "--resume",
                 match="holds another watermark.*32 bits.*resumed run must embed the same one")


# ----------------------------------------------------------------- errors of the watermark commands

@pytest.fixture
def keys(tmp_path, tiny_model_file):
    """Key files next to a tiny LeNet (width 0.5): a good one, one for VGG, one of 8 bits."""
    from nnforensics.models import load_model

    tiny = load_model(tiny_model_file)
    good = save_key(tmp_path / "good.json", make_key(tiny, "conv2", 64, seed=0)[0])
    vgg = create_model("vgg11_bn", {"width": 0.125}, seed=0)
    other = save_key(tmp_path / "vgg.json", make_key(vgg, "features.11", 64, seed=0)[0])
    short = save_key(tmp_path / "short.json", make_key(tiny, "conv2", 8, seed=0)[0])
    return {"good": good, "vgg": other, "short": short}


def test_extract_errors(expect_error, run_cli, tmp_path, tiny_model_file, keys):
    m = tiny_model_file
    assert run_cli("watermark", "extract", m, "--key", keys["good"], "--json").code == 0
    expect_error("watermark", "extract", m, "--key", keys["vgg"],
                 match=r"key is for layer 'features.11' with weight shape \(32, 32, 3, 3\), but the model has no "
                       r"such layer; its Conv/Linear layers: conv1 \(3, 1, 5, 5\)")
    expect_error("watermark", "extract", m, "--key", keys["short"],
                 match="8-bit watermark can never be detected at a false-positive rate of 1e-06")
    assert run_cli("watermark", "extract", m, "--key", keys["short"], "--fpr", "0.01").code == 0
    expect_error("watermark", "extract", m, "--key", keys["good"], "--fpr", "0", match="strictly between 0 and 1")
    truncated = tmp_path / "cut.json"
    truncated.write_bytes(keys["good"].read_bytes()[:100])
    expect_error("watermark", "extract", m, "--key", truncated, match="not valid JSON")
    tagged = tmp_path / "tag.json"
    tagged.write_text(json.dumps({**json.loads(keys["good"].read_text()), "format": "nnforensics-permutation/1"}))
    expect_error("watermark", "extract", m, "--key", tagged, match="format tag 'nnforensics-permutation/1'")
    nan = tmp_path / "nan.json"
    nan.write_text(keys["good"].read_text().replace('"strength": 0.1', '"strength": NaN'))
    expect_error("watermark", "extract", m, "--key", nan, match="non-finite number NaN")
    expect_error("watermark", "extract", m, "--key", tmp_path / "none.json", match="key file not found")
    expect_error("watermark", "extract", m, match="Missing option '--key'", code=2)


def test_verify_errors(expect_error, tmp_path, tiny_model_file, make_model_file, keys):
    other = make_model_file(tmp_path / "wide.safetensors", "lenet", {"width": 1.0})
    expect_error("watermark", "verify", other, "--key", keys["good"], "--original", tiny_model_file,
                 match=r"model's 'conv2' has weight shape \(16, 6, 5, 5\)")
    expect_error("watermark", "verify", tiny_model_file, "--key", keys["good"], "--original", tiny_model_file,
                 "--method", "magic", match="unknown method 'magic'")


def test_embed_errors(expect_error, run_cli, tmp_path, tiny_model_file, keys):
    m, out = tiny_model_file, tmp_path / "out.safetensors"
    base = ["watermark", "embed", m, "--data", "mnist", "-o", out]
    expect_error(*base, "--layer", "fc9", "--key-out", tmp_path / "k.json",
                 match="unknown watermark layer 'fc9'; valid watermark layers: conv1, conv2, fc1, fc2, fc3")
    expect_error(*base, "--layer", "conv2", "--bits", "76", "--key-out", tmp_path / "k.json",
                 match=r"76 bits cannot be embedded.*only 75 entries")
    expect_error(*base, "--layer", "conv2", "--bits", "10", "--key-out", tmp_path / "k.json",
                 match="10-bit watermark can never be detected")
    expect_error(*base, "--layer", "conv2", "--key-out", keys["good"], match="already exists")
    expect_error(*base, "--layer", "conv2", "--key-out", m, match="is also an input")
    expect_error(*base, "--layer", "conv2", "--key-out", out, match="also the model output")
    expect_error(*base, "--layer", "conv2", "--message", "0xZZ", "--key-out", tmp_path / "k.json",
                 match="not hexadecimal")
    expect_error(*base, "--layer", "conv2", "--key-out", tmp_path / "k.json",
                 match="records no training recipe.*--optimizer and --lr")
    assert not out.exists() and not (tmp_path / "k.json").exists()


def test_bare_watermark_command_shows_help(run_cli):
    res = run_cli("watermark")
    assert res.code == 0 and "embed" in res.out + res.err
