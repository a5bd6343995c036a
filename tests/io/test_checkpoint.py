"""Training checkpoints: atomic, weights-only, validated."""

from __future__ import annotations

import pytest
import torch

from nnforensics.errors import CorruptFileError, UnsafeFileError
from nnforensics.io import load_checkpoint, save_checkpoint
from nnforensics.utils.atomic import TMP_PREFIX


def _state() -> dict:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": torch.get_rng_state(),
            "epoch": 1, "step": 5, "history": [{"epoch": 1, "loss": 0.5}], "recipe": {"lr": 0.1}}


def test_round_trip(tmp_path):
    state = _state()
    save_checkpoint(tmp_path / "c.ckpt", state)
    back = load_checkpoint(tmp_path / "c.ckpt")
    assert torch.equal(back["rng"], state["rng"]) and back["history"] == state["history"]
    assert all(torch.equal(back["model"][k], v) for k, v in state["model"].items())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_truncated_checkpoint_is_corrupt(tmp_path):
    save_checkpoint(tmp_path / "c.ckpt", _state())
    data = (tmp_path / "c.ckpt").read_bytes()
    (tmp_path / "c.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="checkpoint .*truncated or corrupt"):
        load_checkpoint(tmp_path / "c.ckpt")


@pytest.mark.parametrize("drop", ["rng", "optimizer", "model"])
def test_incomplete_checkpoint(tmp_path, drop):
    state = _state()
    del state[drop]
    torch.save(state, tmp_path / "c.ckpt")
    with pytest.raises(CorruptFileError, match="incomplete|not an nnforensics training checkpoint"):
        load_checkpoint(tmp_path / "c.ckpt")


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    state = {**_state(), "history": [_Exploit(tmp_path / "PWNED")]}
    torch.save(state, tmp_path / "c.ckpt")
    with pytest.raises(UnsafeFileError, match="refused to load checkpoint"):
        load_checkpoint(tmp_path / "c.ckpt")
    assert not (tmp_path / "PWNED").exists()
