"""Small models trained on real MNIST, cached on disk so every test process reuses them."""

from __future__ import annotations

import os
import time
from pathlib import Path

from nnforensics.io import save_model
from nnforensics.models import LoadedModel, load_model
from nnforensics.training import Recipe, fit

CACHE = Path(os.environ.get("NNF_TEST_CACHE", Path(__file__).resolve().parents[2] / ".test-cache"))

#: Adam, 1 epoch on the first 10,000 MNIST training images (LeNet ~88 %, narrow VGG ~96 %, narrow ResNet ~94 %).
RECIPE = dict(optimizer="adam", lr=2e-3, weight_decay=0.0, epochs=1, schedule="cosine", augment=False, batch_size=128)


def trained(arch: str, width: float = 1.0, seed: int = 0, epochs: float = 1, limit: int = 10000) -> LoadedModel:
    """Train once (per cache), then load. A lock file keeps parallel test workers from racing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{arch}-w{width}-s{seed}-e{epochs}-n{limit}.safetensors"
    lock = path.with_suffix(".lock")
    while not path.exists():
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if time.time() - lock.stat().st_mtime > 600:  # a crashed worker's lock
                lock.unlink(missing_ok=True)
            time.sleep(0.5)
            continue
        try:
            os.close(fd)
            if not path.exists():
                recipe = Recipe(**RECIPE, init_seed=seed, data_seed=seed)
                recipe.epochs = epochs
                model = fit(arch, "mnist", recipe, arch_args={"width": width}, limit=limit, quiet=True)
                save_model(model.model, path, model.meta)
        finally:
            lock.unlink(missing_ok=True)
    return load_model(path)
