"""The end-to-end demo on real MNIST (``make demo`` / ``nnf demo``)."""

from __future__ import annotations

from pathlib import Path

from .io.modelfile import load_model, save_model
from .training import Recipe, fit
from .utils.progress import info

DEMO_RECIPE = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4, batch_size=128,
                     epochs=8, schedule="cosine", init_seed=0, data_seed=0, augment=False)


def trained_demo_model(folder: Path, device: str = "auto", quiet: bool = False):
    """LeNet trained on MNIST, cached as ``folder/lenet-mnist.safetensors``."""
    path = folder / "lenet-mnist.safetensors"
    if path.exists():
        info(f"reusing cached model {path}", quiet)
        return load_model(path), path
    loaded = fit("lenet", "mnist", DEMO_RECIPE, device=device, checkpoint_path=Path(str(path) + ".ckpt"),
                 resume=True, quiet=quiet)
    save_model(loaded.model, path, loaded.meta)
    Path(str(path) + ".ckpt").unlink(missing_ok=True)
    return loaded, path


def run_demo(folder: str | Path = "nnf-demo", device: str = "auto", quiet: bool = False) -> dict:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    loaded, path = trained_demo_model(folder, device, quiet)
    acc = loaded.meta.metrics["test_accuracy"]
    print(f"LeNet on MNIST: test accuracy {acc:.2f}% on {loaded.meta.metrics['test_n']} real test images ({path})")
    return {"model": str(path), "test_accuracy": acc}
