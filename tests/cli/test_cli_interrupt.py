"""Killing ``nnf train`` never leaves a half-written model, and --resume is exact.

Training runs in a real subprocess. The test watches its folder and sends the signal
while a file is being written (a ``.nnf-tmp-*`` file exists): mid-checkpoint or
mid-model, the worst moments.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nnforensics.errors import NNFError
from nnforensics.io import load_checkpoint
from nnforensics.models import load_model
from nnforensics.utils.atomic import TMP_PREFIX

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

#: ~20 steps and one checkpoint per epoch on digits: about a second for all 30.
TRAIN = ["train", "--arch", "mlp", "--arch-arg", "width=0.25", "--data", "digits", "--epochs", "30",
         "--optimizer", "sgd", "--lr", "0.05", "--batch-size", "64", "--schedule", "cosine",
         "--device", "cpu", "--quiet"]
#: One intra-op thread in the subprocess and in-process, so both compute identical bits.
THREADS = 1


def _default_sigint() -> None:
    """Runs in the child before exec: a pytest-xdist worker ignores SIGINT, and an ignored
    signal stays ignored across exec (POSIX), so the run would never see the Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_training(out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    return subprocess.Popen([sys.executable, "-m", "nnforensics", *TRAIN, "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_default_sigint)


def temporaries(folder: Path, suffix: str = "") -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(TMP_PREFIX) and p.name.endswith(suffix)]


def signal_mid_write(proc: subprocess.Popen, out: Path, sig: int, suffix: str) -> tuple[bool, str]:
    """Once the first checkpoint exists, send ``sig`` while a ``*suffix`` file is being written.

    Returns:
        ``(hit, stderr)``: whether the signal went out mid-write (False if the run ended first).
    """
    ckpt, deadline = Path(str(out) + ".ckpt"), time.monotonic() + 90
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    hit = False
    while proc.poll() is None and time.monotonic() < deadline:
        if temporaries(out.parent, suffix):
            proc.send_signal(sig)
            hit = True
            break
        time.sleep(0.0005)
    _, err = proc.communicate(timeout=60)
    return hit, err


def assert_complete_or_absent(path: Path) -> None:
    if path.exists():
        try:
            load_model(path)
        except NNFError as err:
            pytest.fail(f"{path} is not a complete model: {err}")


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


def test_sigkill_mid_checkpoint_then_resume_equals_an_uninterrupted_run(run_cli, make_model_file, tmp_path,
                                                                        one_thread):
    out = tmp_path / "model.safetensors"
    ckpt = Path(str(out) + ".ckpt")
    make_model_file(out, arch="mlp", arch_args={"width": 0.25, "image_size": 8})  # an older model at OUT
    before = out.read_bytes()

    proc = start_training(out)
    hit, _ = signal_mid_write(proc, out, signal.SIGKILL, suffix=".ckpt")
    assert hit and proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert out.read_bytes() == before  # the old model, whole
    done = load_checkpoint(ckpt)["epoch"]  # the previous checkpoint, whole
    assert 1 <= done < 30

    resumed = run_cli(*TRAIN, "--resume", "-o", out)
    assert resumed.code == 0, resumed.err
    assert not ckpt.exists()
    reference = run_cli(*TRAIN, "-o", tmp_path / "reference.safetensors")
    assert reference.code == 0, reference.err
    a, b = load_model(out).model.state_dict(), load_model(tmp_path / "reference.safetensors").model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resumed run differs"


def test_sigkill_while_writing_the_model_keeps_a_complete_file(make_model_file, tmp_path):
    out = tmp_path / "model.safetensors"
    make_model_file(out, arch="mlp", arch_args={"width": 0.25, "image_size": 8})
    before = out.read_bytes()
    proc = start_training(out)
    hit, _ = signal_mid_write(proc, out, signal.SIGKILL, suffix=".safetensors")
    assert proc.returncode == (-signal.SIGKILL if hit else 0)
    assert_complete_or_absent(out)
    # the old model untouched, or (renamed just before the kill / run finished) the new one, whole
    assert out.read_bytes() == before or load_model(out).meta.recipe["epochs"] == 30


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_mid_write_leaves_no_temporary_files(tmp_path, sig):
    out = tmp_path / "model.safetensors"
    proc = start_training(out)
    hit, err = signal_mid_write(proc, out, sig, suffix=".ckpt")
    assert hit, "the run ended before it could be interrupted"
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["error: interrupted"]
    assert temporaries(tmp_path) == []
    assert_complete_or_absent(out)
    load_checkpoint(Path(str(out) + ".ckpt"))  # the last complete checkpoint, ready for --resume
