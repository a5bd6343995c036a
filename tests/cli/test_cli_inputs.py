"""Models whose files record no input shape, driven from the command line (issue 9, finding 15).

A user's own architectures (a flat-vector MLP, a tiny BERT-style model fed token ids
and a mask) saved as plain ``.pt`` state dicts, through groups / permute / resync /
compare / watermark verify / robustness with ``--input-shape`` or ``--example-inputs``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from nnforensics.io import read_meta
from nnforensics.models import load_model

NETS = textwrap.dedent("""
    import torch
    import torch.nn as nn


    class FlatMLP(nn.Module):
        \"\"\"Takes a flat 20-dimensional vector (no image shape to guess).\"\"\"

        def __init__(self, num_classes: int = 10):
            super().__init__()
            self.fc1 = nn.Linear(20, 32)
            self.fc2 = nn.Linear(32, 16)
            self.out = nn.Linear(16, num_classes)

        def forward(self, x):
            return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


    class TinyBert(nn.Module):
        \"\"\"Token ids + attention mask -> embedding, one attention/MLP block, a classifier.\"\"\"

        def __init__(self, vocab: int = 50, dim: int = 16, heads: int = 2, num_classes: int = 3):
            super().__init__()
            self.emb = nn.Embedding(vocab, dim)
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.norm = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 32), nn.GELU(), nn.Linear(32, dim))
            self.head = nn.Linear(dim, num_classes)

        def forward(self, input_ids, attention_mask):
            x = self.emb(input_ids)
            a, _ = self.attn(x, x, x, key_padding_mask=attention_mask == 0, need_weights=False)
            x = self.norm(x + a)
            x = x + self.mlp(x)
            m = attention_mask.unsqueeze(-1).to(x.dtype)
            return self.head((x * m).sum(1) / m.sum(1))
""")

HINT = r"pass --input-shape C,H,W .* or --example-inputs FILE"


@pytest.fixture
def nets(tmp_path: Path) -> dict[str, object]:
    """The architecture file, both models as .pt state dicts, and token inputs (.npz)."""
    source = tmp_path / "user_nets.py"
    source.write_text(NETS)
    namespace: dict[str, object] = {}
    exec(compile(NETS, str(source), "exec"), namespace)  # the test's own code, to build the weights
    torch.manual_seed(0)
    mlp, bert = tmp_path / "mlp.pt", tmp_path / "bert.pt"
    torch.save(namespace["FlatMLP"]().state_dict(), mlp)
    bert_model = namespace["TinyBert"]()
    with torch.no_grad():  # LayerNorm/bias values that are not all equal, so every group carries a signal
        for p in bert_model.parameters():
            if p.dim() == 1:
                p.normal_(0, 0.5)
    torch.save(bert_model.state_dict(), bert)
    rng = np.random.default_rng(0)
    mask = np.ones((3, 8), np.int64)
    mask[1, 6:] = 0
    tokens = tmp_path / "tokens.npz"
    np.savez(tokens, input_ids=rng.integers(0, 50, (3, 8)), attention_mask=mask)
    return {"mlp": mlp, "bert": bert, "tokens": tokens, "mlp_arch": f"{source}:FlatMLP",
            "bert_arch": f"{source}:TinyBert"}


def _ok(result):
    assert result.code == 0, result.err
    return result.json()


def test_state_dict_of_a_user_mlp_needs_an_input_shape_and_records_it(run_cli, expect_error, nets, tmp_path):
    arch = nets["mlp_arch"]
    message = expect_error("groups", nets["mlp"], "--arch", arch, match=HINT)
    assert "example_inputs" not in message.replace("--example-inputs", "")  # CLI words, not the Python API's

    groups = _ok(run_cli("groups", nets["mlp"], "--arch", arch, "--input-shape", "20", "--json"))
    assert [g["name"] for g in groups["groups"]] == ["fc1", "fc2"] and groups["validated"]

    permuted, truth = tmp_path / "stolen.safetensors", tmp_path / "secret.json"
    result = _ok(run_cli("permute", nets["mlp"], "--arch", arch, "--input-shape", "20", "-o", permuted,
                         "--truth-out", truth, "--seed", "3", "--json"))
    assert result["groups"] == 2 and result["max_output_diff"] < 1e-5
    assert read_meta(permuted).input_shape == [20]  # recorded: later commands on it need nothing
    assert list(load_model(permuted, arch=arch).model.state_dict()) == list(torch.load(nets["mlp"]))
    assert _ok(run_cli("groups", permuted, "--arch", arch, "--json"))["units"] == 48

    expect_error("resync", nets["mlp"], permuted, "--arch", arch, "--truth", truth, match=HINT)
    resynced = _ok(run_cli("resync", nets["mlp"], permuted, "--arch", arch, "--input-shape", "20",
                           "--truth", truth, "--json"))
    assert resynced["psi"] == 100.0
    verdict = _ok(run_cli("compare", nets["mlp"], permuted, "--arch", arch, "--input-shape", "20", "--json"))
    assert verdict["verdict"] == "permuted" and verdict["similarity"] == 1.0


def test_one_float_tensor_from_a_safetensors_file_is_passed_positionally(run_cli, nets, tmp_path):
    inputs = tmp_path / "x.safetensors"
    save_file({"features": torch.rand(4, 20, dtype=torch.float64)}, str(inputs))  # float64: cast to the model's
    groups = _ok(run_cli("groups", nets["mlp"], "--arch", nets["mlp_arch"], "--example-inputs", inputs, "--json"))
    assert groups["units"] == 48
    out = tmp_path / "p.safetensors"
    _ok(run_cli("permute", nets["mlp"], "--arch", nets["mlp_arch"], "--example-inputs", inputs, "-o", out, "--json"))
    assert read_meta(out).input_shape == [20]


def test_bert_like_model_driven_by_named_token_inputs(run_cli, expect_error, nets, tmp_path):
    arch, tokens = nets["bert_arch"], nets["tokens"]
    expect_error("groups", nets["bert"], "--arch", arch, match=HINT)
    groups = _ok(run_cli("groups", nets["bert"], "--arch", arch, "--example-inputs", tokens, "--json"))
    names = {g["name"]: g for g in groups["groups"]}
    assert names["mlp.0"]["size"] == 32 and any(g["kind"] == "within" for g in groups["groups"])
    members = [m for g in groups["groups"] for m in g["members"]]
    assert any(m.startswith("emb.weight[1]") for m in members)  # the model's own names: no adapter prefix

    permuted, truth = tmp_path / "bert-stolen.safetensors", tmp_path / "bert-secret.json"
    result = _ok(run_cli("permute", nets["bert"], "--arch", arch, "--example-inputs", tokens, "-o", permuted,
                         "--truth-out", truth, "--json"))
    assert result["groups"] == len(groups["groups"]) and result["max_output_diff"] < 1e-4
    assert read_meta(permuted).input_shape == []  # token ids cannot be drawn at random: nothing recorded
    original, stolen = torch.load(nets["bert"]), load_model(permuted, arch=arch).model.state_dict()
    assert list(stolen) == list(original) and not torch.equal(stolen["mlp.0.weight"], original["mlp.0.weight"])

    resynced = _ok(run_cli("resync", nets["bert"], permuted, "--arch", arch, "--example-inputs", tokens,
                           "--truth", truth, "--json"))
    assert resynced["psi"] == 100.0
    verdict = _ok(run_cli("compare", nets["bert"], permuted, "--arch", arch, "--example-inputs", tokens, "--json"))
    assert verdict["verdict"] == "permuted" and verdict["similarity"] == 1.0


def test_watermark_verify_takes_the_input_options(run_cli, expect_error, nets, tmp_path):
    from nnforensics.watermark import make_key, save_key

    arch = nets["mlp_arch"]
    key, _ = make_key(load_model(nets["mlp"], arch=arch), "fc2", 32, seed=5)
    save_key(tmp_path / "key.json", key)
    permuted = tmp_path / "p.safetensors"
    _ok(run_cli("permute", nets["mlp"], "--arch", arch, "--input-shape", "20", "-o", permuted, "--json"))
    args = ["watermark", "verify", permuted, "--key", tmp_path / "key.json", "--original", nets["mlp"], "--arch", arch]
    expect_error(*args, match=HINT)
    result = _ok(run_cli(*args, "--input-shape", "20", "--json"))
    assert result["permuted_groups"] == 2 and "resynchronized" in result


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("make,match", [
    (lambda d: (d / "e.npz").write_bytes(b"") and d / "e.npz" or d / "e.npz", r"is empty"),
    (lambda d: _npz(d / "o.npz", x=np.array([{"a": 1}], dtype=object)), r"Python objects.*refusing"),
    (lambda d: _npz(d / "n.npz", x=np.array([[0.5, np.nan]])), r"NaN or Inf"),
    (lambda d: _npz(d / "s.npz", x=np.float32(1.0)), r"give a batch"),
    (lambda d: _npz(d / "c.npz", x=np.ones((2, 3), np.complex64)), r"dtype complex64"),
    (lambda d: _npz(d / "k.npz", **{"input-ids": np.ones((2, 3), np.int64), "mask": np.ones((2, 3))}),
     r"must be a Python identifier.*'input-ids'"),
    (lambda d: _npz(d / "big.npz", x=np.zeros((1 << 13, 1 << 12), np.uint8)), r"at most 16,777,216 values"),
    (lambda d: (d / "bad.npz").write_bytes(b"PK\x03\x04garbage") and d / "bad.npz", r"not a readable .npz"),
    (lambda d: (d / "x.pt").write_bytes(b"x") and d / "x.pt", r"\.safetensors or \.npz files"),
    (lambda d: d / "missing.npz", r"file not found"),
])
def test_bad_example_inputs_are_one_clear_line(expect_error, nets, tmp_path, make, match):
    path = make(tmp_path)
    expect_error("groups", nets["mlp"], "--arch", nets["mlp_arch"], "--example-inputs", path, match=match)


@pytest.mark.parametrize("shape,match", [
    ("3,-1", "positive integers"), ("abc", "positive integers"), ("100000,100000", "at most"),
    # review of issue 9: "3,x" was read as (3,), "20,,," as (20,), a 5-D shape refused only when saving
    ("3,x", "positive integers"), ("20,,,", "positive integers"), (",20", "positive integers"),
    ("20,0", "positive integers"), ("2.5", "positive integers"), ("", "positive integers"),
    ("1,1,1,1,20", r"has 5 axes; one input has 1 to 4"),
])
def test_bad_input_shapes(expect_error, nets, shape, match):
    expect_error("groups", nets["mlp"], "--arch", nets["mlp_arch"], "--input-shape", shape, match=match)


@pytest.mark.parametrize("text, shape", [("20", [20]), ("3,32,32", [3, 32, 32]), (" 3, 32 ,32 ", [3, 32, 32]),
                                         ("1,2,3,4", [1, 2, 3, 4])])
def test_input_shapes_accepted(text, shape):
    from nnforensics.cli.loading import parse_input_shape

    assert parse_input_shape(text) == shape


def test_input_shape_and_example_inputs_together_are_refused(expect_error, nets):
    expect_error("groups", nets["mlp"], "--arch", nets["mlp_arch"], "--input-shape", "20",
                 "--example-inputs", nets["tokens"], match="not both")


def test_robustness_accepts_a_state_dict_with_arch(run_cli, expect_error, trained_digits_model, tmp_path):
    """README: every command that takes a model accepts a .pt with --arch; the sweep uses the data's shape."""
    from safetensors.torch import load_file

    state_dict = tmp_path / "digits-mlp.pt"
    torch.save(load_file(str(trained_digits_model)), state_dict)
    arch_args = [a for k, v in read_meta(trained_digits_model).arch_args.items() for a in ("--arch-arg", f"{k}={v}")]
    sweep = ["robustness", state_dict, "--data", "digits", "--attack", "noise", "--levels", "1", "--seeds", "1",
             "--methods", "lap", "--no-report"]
    expect_error(*sweep, "-o", tmp_path / "refused", match=r"no nnforensics metadata; pass --arch")
    result = run_cli(*sweep, "--arch", "mlp", *arch_args, "-o", tmp_path / "sweep", "--json")
    summary = _ok(result)
    assert summary["ran"] == 1 and not summary["failed"]
    assert "━" not in result.err and "\x1b[" not in result.err  # no progress-bar residue when not a terminal
    import pandas as pd

    rows = pd.read_parquet(tmp_path / "sweep" / "results.parquet")
    assert rows["psi"].tolist() == [100.0] and rows["base_error"].iloc[0] < 20  # the trained weights, evaluated
