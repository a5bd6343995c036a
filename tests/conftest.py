"""Shared fixtures: an in-process ``nnf`` runner, tiny model files, a tiny trained model.

Kept small on purpose: anything specific to one test folder lives in that folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch

#: A narrow LeNet for MNIST-shaped inputs (1, 28, 28): ~16k parameters.
TINY_ARCH = ("lenet", {"width": 0.5})


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, share the cores between workers instead of oversubscribing them.

    Each worker (and each ``nnf`` subprocess a test starts, through OMP_NUM_THREADS)
    gets cores / workers torch threads: with 2 workers on 2 cores, OpenMP threads
    spinning at barriers otherwise slow CPU training several-fold.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


class CliResult(NamedTuple):
    """What one ``nnf`` invocation produced."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON (fails the test if it is not)."""
        return json.loads(self.out)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """``run_cli("eval", path, "--json")`` -> :class:`CliResult`, run in-process (no startup cost)."""
    from nnforensics.cli import main

    def run(*args: object) -> CliResult:
        capsys.readouterr()  # drop anything printed before
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def _make_model_file(path: Path, arch: str = TINY_ARCH[0], arch_args: dict | None = None, seed: int = 0) -> Path:
    from nnforensics.io import save_model
    from nnforensics.models.factory import create_model

    loaded = create_model(arch, dict(TINY_ARCH[1] if arch_args is None else arch_args), seed=seed)
    return save_model(loaded.model, path, loaded.meta)


@pytest.fixture
def make_model_file():
    """``make_model_file(path, arch="lenet", arch_args={"width": 0.5}, seed=0)`` writes a fresh model file."""
    return _make_model_file


@pytest.fixture
def tiny_model_file(tmp_path: Path) -> Path:
    """A fresh narrow LeNet (1x28x28 inputs, 10 classes) as ``tmp_path/tiny.safetensors``."""
    return _make_model_file(tmp_path / "tiny.safetensors")


@pytest.fixture
def tiny_state_dict_file(tiny_model_file: Path) -> Path:
    """The same weights as a plain ``.pt`` state dict (no metadata: needs ``--arch``)."""
    from safetensors.torch import load_file

    path = tiny_model_file.with_suffix(".pt")
    torch.save(load_file(str(tiny_model_file)), path)
    return path


@pytest.fixture(scope="session")
def trained_digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MLP trained for a few epochs on ``digits`` (~90 % test accuracy); do not modify."""
    from nnforensics.io import save_model
    from nnforensics.training import Recipe, fit

    recipe = Recipe(optimizer="adam", lr=3e-3, weight_decay=0.0, batch_size=64, epochs=5, schedule="none")
    loaded = fit("mlp", "digits", recipe, arch_args={"width": 0.25}, device="cpu", quiet=True)
    return save_model(loaded.model, tmp_path_factory.mktemp("trained") / "mlp-digits.safetensors", loaded.meta)
