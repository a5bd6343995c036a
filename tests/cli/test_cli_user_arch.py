"""A user's own architecture: --arch path/to/file.py:Class and --arch package.module:factory."""

from __future__ import annotations

import sys
import textwrap
import uuid

import pytest
import torch

from nnforensics.io import read_meta
from nnforensics.models import load_model

NET_SOURCE = textwrap.dedent("""
    import torch.nn as nn

    class TinyNet(nn.Module):
        def __init__(self, num_classes: int = 10, hidden: int = 16):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU())
            self.head = nn.Linear(hidden, num_classes)

        def forward(self, x):
            return self.head(self.body(x))

    def not_a_module():
        return 42
""")


@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "my_nets.py"
    path.write_text(NET_SOURCE)
    return path


def test_train_and_eval_a_class_from_a_file(run_cli, expect_error, net_file, tmp_path):
    arch = f"{net_file}:TinyNet"
    out = tmp_path / "tiny.safetensors"
    trained = run_cli("train", "--arch", arch, "--arch-arg", "hidden=12", "--data", "digits", "--epochs", "1",
                      "--optimizer", "adam", "--lr", "0.003", "--device", "cpu", "-q", "--json", "-o", out)
    assert trained.code == 0, trained.err
    meta = read_meta(out)
    assert meta.arch == arch and meta.arch_args == {"num_classes": 10, "hidden": 12}

    # the file names the class but is never followed without an explicit --arch
    expect_error("eval", out, "--data", "digits", match=r"user architecture .*TinyNet.*pass --arch")
    result = run_cli("eval", out, "--arch", arch, "--data", "digits", "--json")
    assert result.code == 0, result.err
    assert result.json()["accuracy"] == trained.json()["test_accuracy"]

    layers = run_cli("layers", out, "--arch", arch, "--json").json()
    assert [r["name"] for r in layers] == ["body.1", "head"]


def test_file_arch_round_trip_is_bit_exact(run_cli, net_file, tmp_path):
    arch = f"{net_file}:TinyNet"
    out = tmp_path / "init.safetensors"
    assert run_cli("init", "--arch", arch, "--seed", "3", "-o", out, "-q").code == 0
    a, b = load_model(out, arch=arch), load_model(out, arch=arch)
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(a.model(x), b.model(x))
    # the same file reached by another path still counts as the recorded architecture
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / net_file.name).write_text(net_file.read_text())
    assert load_model(out, arch=f"{moved / net_file.name}:TinyNet").meta.arch_args == read_meta(out).arch_args


@pytest.mark.parametrize("arch_suffix,args,match", [
    (":TinyNet", ["--arch-arg", "hiden=3"], r"does not take argument\(s\) hiden"),
    (":Missing", [], "has no class or function named 'Missing'"),
    (":not_a_module", [], "returned int, not a torch.nn.Module"),
])
def test_user_arch_mistakes(expect_error, net_file, tmp_path, arch_suffix, args, match):
    expect_error("init", "--arch", f"{net_file}{arch_suffix}", *args, "-o", tmp_path / "m.safetensors", match=match)


def test_missing_or_broken_file(expect_error, tmp_path):
    expect_error("layers", "--arch", f"{tmp_path / 'nope.py'}:Net", match="does not exist")
    (tmp_path / "broken.py").write_text("import torch\nraise ValueError('oops')\n")
    expect_error("layers", "--arch", f"{tmp_path / 'broken.py'}:Net", match=r"importing .* failed: ValueError: oops")


def test_package_module_factory_found_from_the_current_folder(run_cli, monkeypatch, tmp_path):
    """``nnf`` (unlike ``python -m``) does not put the current folder on sys.path; the CLI does."""
    package = f"nnf_user_pkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "models.py").write_text(NET_SOURCE + textwrap.dedent("""
        def make(num_classes: int = 10, hidden: int = 8):
            return TinyNet(num_classes, hidden)
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    arch = f"{package}.models:make"
    out = tmp_path / "pkg.safetensors"
    result = run_cli("init", "--arch", arch, "--arch-arg", "hidden=5", "-o", out, "--json")
    assert result.code == 0, result.err
    assert result.json()["arch_args"] == {"hidden": 5}
    layers = run_cli("layers", out, "--arch", arch, "--json").json()
    assert layers[0]["parameters"]["weight"] == [5, 64]
