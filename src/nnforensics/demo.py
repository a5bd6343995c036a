"""The end-to-end demo on real MNIST (``make demo`` / ``nnf demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .io.modelfile import LoadedModel, load_model, save_model
from .training import Recipe, fit
from .utils.progress import info

DEMO_RECIPE = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4, batch_size=128,
                     epochs=8, schedule="cosine", init_seed=0, data_seed=0, augment=False)


def trained_demo_model(folder: Path, device: str = "auto", quiet: bool = False) -> tuple[LoadedModel, Path]:
    """LeNet trained on MNIST, cached as ``folder/lenet-mnist.safetensors``.

    An interrupted demo resumes from its checkpoint on the next run.
    """
    path = folder / "lenet-mnist.safetensors"
    if path.exists():
        info(f"reusing cached model {path}", quiet)
        return load_model(path), path
    ckpt = Path(str(path) + ".ckpt")
    loaded = fit("lenet", "mnist", DEMO_RECIPE, device=device, checkpoint_path=ckpt, resume=True, quiet=quiet)
    save_model(loaded.model, path, loaded.meta)
    ckpt.unlink(missing_ok=True)
    return loaded, path


def run_demo(folder: str | Path = "nnf-demo", device: str = "auto", quiet: bool = False) -> dict[str, Any]:
    """Train (or reuse) the demo model; returns ``{"model", "test_accuracy", "test_n"}``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        from .errors import ConfigError

        raise ConfigError(f"demo output {str(folder)!r} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    loaded, path = trained_demo_model(folder, device, quiet)
    metrics = loaded.meta.metrics
    return {"model": str(path), "test_accuracy": metrics["test_accuracy"], "test_n": metrics["test_n"]}
