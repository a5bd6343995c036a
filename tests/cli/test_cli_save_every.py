"""``nnf train --save-every K``: model files at the initialisation and every K whole epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nnforensics.io import read_meta
from nnforensics.io.snapshots import Snapshots, snapshot_path
from nnforensics.training import Recipe, fit

#: ~20 steps per epoch on digits with a narrow MLP: well under a second per epoch.
TRAIN = ["train", "--arch", "mlp", "--arch-arg", "width=0.25", "--data", "digits", "--optimizer", "adam",
         "--lr", "0.003", "--batch-size", "64", "--device", "cpu", "--seed", "3"]


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def snapshot_files(folder: Path, stem: str = "m") -> list[str]:
    return sorted(p.name for p in folder.glob(f"{stem}.epoch*.safetensors"))


def test_snapshots_are_the_init_the_epochs_and_the_final_model(run_cli, tmp_path):
    out = tmp_path / "m.safetensors"
    result = run_cli(*TRAIN, "--epochs", "4", "--save-every", "2", "-o", out)
    assert result.code == 0, result.err
    assert snapshot_files(tmp_path) == ["m.epoch0.safetensors", "m.epoch2.safetensors", "m.epoch4.safetensors"]
    for epoch in (0, 2, 4):
        assert f"snapshot at epoch {epoch}: {snapshot_path(out, epoch)}" in result.err
    final, snaps = tensors(out), {e: tensors(snapshot_path(out, e)) for e in (0, 2, 4)}
    assert same(snaps[4], final) and not same(snaps[2], final) and not same(snaps[0], snaps[2])

    init = tmp_path / "init.safetensors"
    assert run_cli("init", "--arch", "mlp", "--arch-arg", "width=0.25", "--data", "digits", "--seed", "3",
                   "-o", init, "--quiet").code == 0
    assert same(snaps[0], tensors(init))

    plain = tmp_path / "plain.safetensors"
    assert run_cli(*TRAIN, "--epochs", "4", "-o", plain, "--quiet").code == 0
    assert same(tensors(plain), final)  # snapshots change nothing in the run
    assert read_meta(plain).metrics == read_meta(out).metrics
    assert snapshot_files(tmp_path, "plain") == []

    meta0, meta2, final_meta = (read_meta(p) for p in (snapshot_path(out, 0), snapshot_path(out, 2), out))
    assert meta0.extra == {"epoch": 0} and meta2.extra == {"epoch": 2}
    assert meta0.metrics == {"train_images": final_meta.metrics["train_images"]}
    assert set(meta2.metrics) == {"loss", "train_accuracy", "val_accuracy", "train_images"}
    assert meta2.history[-1] == {"op": "train", "epochs": 2, "steps": 40, "dataset": "digits"}
    assert meta2.recipe == final_meta.recipe and meta2.recipe["preset"] == final_meta.recipe["preset"]
    assert (meta2.arch, meta2.arch_args, meta2.normalization) == \
           (final_meta.arch, final_meta.arch_args, final_meta.normalization)


def test_fractional_epochs_snapshot_whole_epochs_only(run_cli, tmp_path):
    out = tmp_path / "m.safetensors"
    result = run_cli(*TRAIN, "--epochs", "2.5", "--save-every", "1", "--json", "-o", out)
    assert result.code == 0, result.err
    names = ["m.epoch0.safetensors", "m.epoch1.safetensors", "m.epoch2.safetensors"]
    assert [Path(p).name for p in result.json()["snapshots"]] == names
    assert snapshot_files(tmp_path) == names  # no epoch 3: it was half an epoch
    assert "snapshot at" not in result.err  # --json: the paths are in the JSON only
    quiet = run_cli(*TRAIN, "--epochs", "1", "--save-every", "1", "--quiet", "-o", tmp_path / "q.safetensors")
    assert quiet.code == 0 and quiet.out == "" and quiet.err == ""
    assert snapshot_files(tmp_path, "q") == ["q.epoch0.safetensors", "q.epoch1.safetensors"]


@pytest.mark.parametrize("value", ["0", "-2"])
def test_bad_interval_fails_before_training(expect_error, tmp_path, value):
    expect_error(*TRAIN, "--epochs", "1", "--save-every", value, "-o", tmp_path / "m.safetensors",
                 match=r"--save-every must be a whole number of epochs >= 1")
    assert list(tmp_path.iterdir()) == []


def test_a_snapshot_never_overwrites_an_input(expect_error, tmp_path):
    data = tmp_path / "m.epoch2.safetensors"  # a data file that happens to carry a snapshot's name
    with data.open("wb") as handle:
        np.savez(handle, x=np.zeros((30, 1, 4, 4), np.uint8), y=np.arange(30) % 3)
    kept = data.read_bytes()
    expect_error("train", "--arch", "mlp", "--data", f"npz:{data}", "--epochs", "3", "--save-every", "2",
                 "-o", tmp_path / "m.safetensors", match=r"m\.epoch2\.safetensors.*is also an input")
    assert data.read_bytes() == kept and snapshot_files(tmp_path) == ["m.epoch2.safetensors"]


class Interrupt(Exception):
    pass


def test_resume_keeps_the_snapshots_already_written(tmp_path):
    recipe = Recipe(optimizer="sgd", lr=0.05, batch_size=64, epochs=4, schedule="cosine", init_seed=1,
                    data_seed=2, checkpoint_every=1)
    out, ckpt = tmp_path / "m.safetensors", tmp_path / "m.safetensors.ckpt"
    calls = {"n": 0}

    def stop_in_epoch_3(model: torch.nn.Module) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] > 50:  # 20 steps per epoch: epochs 1 and 2 are done and checkpointed
            raise Interrupt
        return torch.zeros(())

    first = Snapshots(out, 1, quiet=True)
    with pytest.raises(Interrupt):
        fit("mlp", "digits", recipe, arch_args={"width": 0.25}, checkpoint_path=ckpt, quiet=True,
            extra_loss=stop_in_epoch_3, snapshots=first)
    assert [p.name for p in first.written] == ["m.epoch0.safetensors", "m.epoch1.safetensors",
                                               "m.epoch2.safetensors"]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in first.written}

    second = Snapshots(out, 1, quiet=True)
    resumed = fit("mlp", "digits", recipe, arch_args={"width": 0.25}, checkpoint_path=ckpt, resume=True,
                  quiet=True, snapshots=second)
    assert [p.name for p in second.written] == ["m.epoch3.safetensors", "m.epoch4.safetensors"]
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in first.written} == before  # left as they were

    plain = fit("mlp", "digits", recipe, arch_args={"width": 0.25}, quiet=True)
    final = {k: v.detach() for k, v in plain.model.state_dict().items()}
    assert same({k: v.detach() for k, v in resumed.model.state_dict().items()}, final)
    assert same(tensors(snapshot_path(out, 4)), final)
