"""The end-to-end demo on real MNIST (``make demo`` / ``nnf demo``).

The story, in a few minutes on 2 CPU cores:

1. train (or reuse the cached) LeNet on MNIST;
2. an attacker permutes all its neurons (same function) and adds noise;
3. a naive, position-by-position comparison no longer recognises the model;
4. re-synchronization puts every neuron back (Ψ) and ``compare`` names the modification;
5. a white-box watermark is destroyed by the permutation and recovered by re-synchronization;
6. a short robustness sweep writes tables, plots and a self-contained HTML report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .io.modelfile import save_model
from .models.loading import LoadedModel, load_model
from .training import Recipe, fit
from .utils.progress import info

DEMO_RECIPE = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4, batch_size=128,
                     epochs=8, schedule="cosine", init_seed=0, data_seed=0, augment=False)
NOISE = 0.5  # Omega of the attacker's noise (x the layer's weight std): a copy that still works
SWEEP = {"levels": [0.0, 1.0, 2.0, 3.0], "seeds": 2, "methods": ["lap", "argmax", "rank"]}
WATERMARK_LAYER = "fc1"  # its inputs come from conv2, whose permutation scrambles the mark


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


def naive_similarity(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """Mean cosine similarity of the weight tensors compared position by position (no re-synchronization)."""
    sa, sb = a.state_dict(), b.state_dict()
    sims = [float(torch.nn.functional.cosine_similarity(sa[k].flatten().double(), sb[k].flatten().double(), dim=0))
            for k in sa if k.endswith("weight") and sa[k].dim() >= 2]
    return float(np.mean(sims))


def run_demo(folder: str | Path = "nnf-demo", device: str = "auto", quiet: bool = False,
             say: Callable[[str], None] = print, sweep: bool = True) -> dict[str, Any]:
    """Run the whole story; ``say`` receives its narration. Returns the measured numbers."""
    from .data.registry import load_dataset
    from .integrity import compare
    from .permutation import permute
    from .perturbation import perturb
    from .resynchronization import resync
    from .training import evaluate

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        from .errors import ConfigError

        raise ConfigError(f"demo output {str(folder)!r} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    loaded, path = trained_demo_model(folder, device, quiet)
    metrics = loaded.meta.metrics
    out: dict[str, Any] = {"model": str(path), "test_accuracy": metrics["test_accuracy"], "test_n": metrics["test_n"]}
    say(f"1. LeNet on MNIST: test accuracy {out['test_accuracy']:.2f}% on {out['test_n']} real test images ({path})")

    test = load_dataset("mnist", "test")
    norm = loaded.meta.normalization
    perm = permute(loaded, seed=2024)
    suspect = perturb(perm.model, "noise", NOISE, seed=7).model
    suspect_path = folder / "suspect.safetensors"
    save_model(suspect, suspect_path, loaded.meta.with_history(op="demo-attack", noise=NOISE))
    err = evaluate(suspect, test, normalization=norm)["error"]
    out.update(groups=len(perm.perms), units=int(perm.group_set.n_units), permute_output_change=perm.max_output_diff,
               suspect_error=err)
    say(f"2. Attacker: permuted all {out['units']} neurons of {out['groups']} groups "
        f"(largest output change {perm.max_output_diff:.1e}: same function), then added Gaussian noise "
        f"Ω = {NOISE:g}·σ to every layer -> suspect error {err:.2f}% ({suspect_path})")

    naive = naive_similarity(loaded.model, suspect)
    naive_psi = 100.0 * np.mean([np.mean(np.asarray(p) == np.arange(len(p))) for p in perm.perms.values()])
    out.update(naive_similarity=naive, naive_psi=float(naive_psi))
    say(f"3. Naive comparison, position by position: mean weight cosine {naive:.3f}, only {naive_psi:.1f}% of "
        f"neurons where the original has them: the copy looks unrelated")

    methods = {}
    for method in ("lap", "argmax"):
        result = resync(loaded, suspect, method=method, truth=perm.perms, group_set=perm.group_set)
        methods[method] = {"psi": result.psi, "collisions": result.collisions, "seconds": result.seconds}
    verdict = compare(loaded, suspect, group_set=perm.group_set)
    out.update(resync=methods, verdict=verdict.verdict, kind=verdict.kind, similarity=verdict.similarity)
    say(f"4. Re-synchronization: Ψ = {methods['lap']['psi']:.2f}% with lap, {methods['argmax']['psi']:.2f}% with the "
        f"paper's argmax ({methods['argmax']['collisions']} collisions); compare -> {verdict.verdict} "
        f"({verdict.kind}: {verdict.kind_detail}), {verdict.reidentified} of {verdict.units} neurons re-identified "
        f"(similarity {verdict.similarity:.3f}, {verdict.confidence} confidence)")

    marked_path, key_path = _watermark_story(folder, loaded, out, say, quiet)

    if sweep:
        from .experiments.robustness import run_robustness
        from .report import build_report

        results = folder / "sweep"
        run_robustness(marked_path, "mnist", "noise", results, levels=SWEEP["levels"], seeds=SWEEP["seeds"],
                       methods=SWEEP["methods"], limit_eval=2000, watermark_key=key_path, quiet=quiet)
        out["report"] = str(build_report(results, quiet=quiet))
        say(f"6. Robustness sweep of the marked model (all neurons permuted, noise on every layer, "
            f"{len(SWEEP['levels'])} levels x {SWEEP['seeds']} seeds x {len(SWEEP['methods'])} methods, "
            f"watermark tracked): tables, plots and {out['report']}")
    return out


def _watermark_story(folder: Path, loaded: LoadedModel, out: dict[str, Any], say: Callable[[str], None],
                     quiet: bool) -> tuple[Path, Path]:
    """Embed a 64-bit Uchida mark (cached), let the attacker permute it away, recover it."""
    from .permutation import permute
    from .perturbation import perturb
    from .watermark import embed, extract, load_key, make_key, save_key, verify

    marked_path, key_path = folder / "lenet-marked.safetensors", folder / "watermark-key.json"
    if marked_path.exists() and key_path.exists():
        marked, key = load_model(marked_path), load_key(key_path)
    else:
        key, _ = make_key(loaded, WATERMARK_LAYER, 64, seed=2024)
        result = embed(loaded, key, "mnist", epochs=1, quiet=quiet)
        key_path.unlink(missing_ok=True)
        save_key(key_path, key)
        save_model(result.model, marked_path, result.meta)
        marked = load_model(marked_path)
    mark = extract(marked, key)
    stolen = permute(marked, seed=99)
    stolen_model = perturb(stolen.model, "noise", NOISE, seed=3).model
    raw = extract(stolen_model, key)
    checked = verify(stolen_model, marked, key)
    out["watermark"] = {"ber_marked": mark.ber, "ber_stolen": raw.ber, "detected_stolen": raw.detected,
                        "ber_resynchronized": checked.resynchronized.ber,
                        "detected_resynchronized": checked.resynchronized.detected}
    say(f"5. Watermark: 64 bits embedded in {WATERMARK_LAYER} (BER {mark.ber:.1f}%, p = {mark.p_value:.1e}); "
        f"the permuted + noisy copy reads BER {raw.ber:.1f}% (detected: {raw.detected}); after re-synchronization "
        f"BER {checked.resynchronized.ber:.1f}% (detected: {checked.resynchronized.detected}, "
        f"p = {checked.resynchronized.p_value:.1e})")
    return marked_path, key_path
