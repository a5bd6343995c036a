"""Watermarked models on real MNIST, built once per test run and shared by the xdist workers.

One case per architecture: the network from :func:`tests.core.trained.trained` (Adam,
1 epoch on 10k MNIST images), a 64-bit key (seeded, for reproducibility) on a middle
layer, one epoch of embedding with the model's own recipe, and, as the control, the
same fine-tuning without the regulariser (so the accuracy cost of the mark is isolated).
Accuracies are measured on the full 10k MNIST test set.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnforensics.data.registry import load_dataset
from nnforensics.io import save_model
from nnforensics.models import LoadedModel, load_model
from nnforensics.training import evaluate, train
from nnforensics.watermark import WatermarkKey, embed, load_key, make_key, save_key

from ..core.trained import trained

#: arch -> (width, watermarked layer, the layer feeding it)
CASES = {
    "lenet": (1.0, "fc1", "conv2"),          # Linear: len(w) = 400 (conv2's 16 channels x 5 x 5)
    "vgg11_bn": (0.125, "features.11", "features.8"),  # Conv 32->32 3x3: len(w) = 32 * 9 = 288
}
KEY_SEED = 1
TRAIN_IMAGES = 10000


@dataclass
class Case:
    """A watermarked model, its original, its key and what embedding measured."""

    arch: str
    layer: str
    previous: str
    original: LoadedModel
    marked: LoadedModel
    marked_path: Path
    key: WatermarkKey
    key_path: Path
    stats: dict[str, Any]


def _lock(path: Path):
    """Wait for and take an exclusive lock file (another worker may be building the same case)."""
    while True:
        try:
            return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if time.time() - path.stat().st_mtime > 600:  # a crashed worker's lock
                path.unlink(missing_ok=True)
            time.sleep(0.5)


def _build(arch: str, folder: Path) -> None:
    width, layer, _ = CASES[arch]
    original = trained(arch, width)
    key, _ = make_key(original, layer, 64, seed=KEY_SEED)
    train_data = load_dataset("mnist", "train", limit=TRAIN_IMAGES)
    test = load_dataset("mnist", "test")
    result = embed(original, key, train_data, eval_data=test, seed=0)
    control = copy.deepcopy(original.model)  # the same fine-tuning, without the watermark
    train(control, train_data, result.recipe, normalization=original.meta.normalization, quiet=True)
    stats = {"ber": result.extract.ber, "p_value": result.extract.p_value, "detected": result.extract.detected,
             "accuracy_original": result.accuracy_before, "accuracy_marked": result.accuracy_after,
             "accuracy_control": evaluate(control, test, normalization=original.meta.normalization)["accuracy"],
             "eval_n": result.eval_n, "embed_seconds": result.seconds, "steps": result.steps}
    save_key(folder / f"{arch}.key.json", key)
    save_model(result.model, folder / f"{arch}.safetensors", result.meta)
    (folder / f"{arch}.json").write_text(json.dumps(stats))  # written last: marks the case complete


def get_case(arch: str, folder: Path) -> Case:
    """The case of ``arch``, built in ``folder`` by the first worker that asks."""
    done = folder / f"{arch}.json"
    if not done.exists():
        lock = folder / f"{arch}.lock"
        fd = _lock(lock)
        try:
            os.close(fd)
            if not done.exists():
                _build(arch, folder)
        finally:
            lock.unlink(missing_ok=True)
    width, layer, previous = CASES[arch]
    return Case(arch, layer, previous, trained(arch, width), load_model(folder / f"{arch}.safetensors"),
                folder / f"{arch}.safetensors", load_key(folder / f"{arch}.key.json"),
                folder / f"{arch}.key.json", json.loads(done.read_text()))
