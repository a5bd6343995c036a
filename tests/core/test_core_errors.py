"""Clear errors from the core API and CLI."""

from __future__ import annotations

import json

import pytest

from nnforensics.errors import ConfigError, CorruptFileError, ShapeMismatchError, UnknownNameError
from nnforensics.io import save_model
from nnforensics.models.factory import create_model
from nnforensics.permutation import load_truth, permute, save_truth
from nnforensics.resynchronization import resync


@pytest.fixture
def lenet():
    return create_model("lenet", {"width": 0.5}, seed=0)


def test_different_architectures(lenet):
    other = create_model("lenet", {"width": 1.0}, seed=0)
    with pytest.raises(ShapeMismatchError, match="conv1.weight"):
        resync(lenet, other)
    mlp = create_model("mlp", {}, seed=0)
    with pytest.raises(ShapeMismatchError, match="missing keys|unexpected"):
        resync(lenet, mlp)


def test_unknown_group_and_method(lenet):
    with pytest.raises(UnknownNameError, match="conv1"):
        permute(lenet, groups=["nope"])
    with pytest.raises(UnknownNameError, match="weight-matching"):
        resync(lenet, lenet.model, method="hungarian")


def test_truth_that_does_not_fit(lenet, tmp_path):
    perm = permute(lenet, seed=0)
    path = tmp_path / "t.json"
    save_truth(path, perm.perms)
    wide = create_model("lenet", {"width": 1.0}, seed=0)
    with pytest.raises(ConfigError, match="has .* units"):
        load_truth(path, permute(wide, seed=0).group_set)
    bad = dict(perm.perms)
    bad["ghost"] = [0, 1]
    with pytest.raises(ConfigError, match="ghost"):
        resync(lenet, perm.model, truth=bad)
    (tmp_path / "broken.json").write_text('{"format": "nnforensics-permutation/1", "groups": {"conv1": [0, 0, 1]}}')
    with pytest.raises(CorruptFileError, match="not a permutation"):
        load_truth(tmp_path / "broken.json")


def test_cli_round_trip_and_errors(lenet, tmp_path, run_cli):
    original = save_model(lenet.model, tmp_path / "a.safetensors", lenet.meta)
    res = run_cli("permute", original, "-o", tmp_path / "p.safetensors", "--truth-out", tmp_path / "t.json",
                  "--seed", "3", "--json")
    assert res.code == 0, res.err
    assert res.json()["groups"] == 4 and res.json()["max_output_diff"] < 1e-5
    res = run_cli("resync", original, tmp_path / "p.safetensors", "--truth", tmp_path / "t.json", "--json",
                  "-o", tmp_path / "r.safetensors")
    assert res.code == 0, res.err
    body = res.json()
    assert body["method"] == "lap" and body["psi"] == 100.0 and {g["name"] for g in body["groups"]} >= {"conv1", "fc1"}
    res = run_cli("compare", original, tmp_path / "p.safetensors", "--json", "--report", tmp_path / "c.html")
    assert res.code == 0 and res.json()["verdict"] == "permuted"
    page = (tmp_path / "c.html").read_text()
    assert "data:image/png;base64," in page and "http" not in page and "<script" not in page
    res = run_cli("groups", original, "--json")
    assert res.code == 0 and len(res.json()["groups"]) == 4
    other = create_model("mlp", {}, seed=0)
    save_model(other.model, tmp_path / "m.safetensors", other.meta)
    for args, pattern in [
        (("resync", original, tmp_path / "m.safetensors"), "same architecture"),
        (("permute", original, "-o", tmp_path / "x.safetensors", "--groups", "nope"), "unknown group"),
        (("permute", original, "-o", original), "also an input"),
        (("resync", original, tmp_path / "p.safetensors", "--method", "magic"), "unknown method"),
        (("resync", original, tmp_path / "p.safetensors", "--truth", tmp_path / "missing.json"), "not found"),
    ]:
        res = run_cli(*args)
        assert res.code != 0 and pattern in res.err and "Traceback" not in res.err, (args, res.err)
        assert len(res.err.strip().splitlines()) == 1
    json.loads((tmp_path / "t.json").read_text())
