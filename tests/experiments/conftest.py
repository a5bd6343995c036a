"""Fixtures of the sweep tests: the toy cells' folder, a tiny model trained on real digits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def toy_env(monkeypatch) -> dict[str, str]:
    """Environment in which subprocesses and Ray workers can import ``sweep_toycells``."""
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    return {**os.environ, "PYTHONPATH": path}


@pytest.fixture(scope="session")
def core():
    """The permutation core (``find_groups``, ``permute``, ``resync``...); skips until it exists."""
    import nnforensics

    if not all(callable(getattr(nnforensics, n, None)) for n in ("find_groups", "permute", "resync", "similarity_matrix",
                                                 "example_inputs_for")):
        pytest.skip("the permutation core (nnforensics.permute / resync) is not available yet")
    return nnforensics


@pytest.fixture(scope="session")
def digits_mlp(tmp_path_factory) -> Path:
    """An MLP (64 -> 32 -> 16 -> 10) trained briefly on the real scikit-learn digits, with its recipe."""
    from nnforensics.io import save_model
    from nnforensics.training import Recipe, fit

    recipe = Recipe(optimizer="sgd", lr=0.1, momentum=0.9, epochs=6, batch_size=32, schedule="step", augment=False)
    loaded = fit("mlp", "digits", recipe, arch_args={"hidden": [32, 16]}, quiet=True)
    path = tmp_path_factory.mktemp("models") / "mlp-digits.safetensors"
    save_model(loaded.model, path, loaded.meta)
    return path
