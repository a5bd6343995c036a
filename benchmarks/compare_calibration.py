"""What `nnf compare` says about copies and about unrelated networks, measured.

Every number that README.md and the docs quote about `compare` (similarity of permuted,
noisy, quantized, pruned, scaled and fine-tuned copies; of independently trained
networks; which kind of change is read) comes from this script:

    make calibration            # or: .venv/bin/python benchmarks/compare_calibration.py

Models (trained here on the real MNIST, cached in results/calibration/):
  * LeNet, 8 epochs of SGD (the `nnf demo` model), unrelated twin: another seed;
  * LeNet, narrow VGG-11-bn and ResNet-18 (width 1/8): 1 epoch of Adam on 10,000 images,
    unrelated twins: the same recipe from two other seeds;
  * MTCNN's ONet with its published face-detection weights (a real pretrained network,
    from the facenet-pytorch wheel), unrelated twins: three fresh initialisations.
Each copy is the original with every permutation group permuted, then modified, in three
trials with different seeds.
Writes results/calibration/compare.csv and docs/compare_calibration.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nnforensics.demo import DEMO_RECIPE  # noqa: E402
from nnforensics.graph import example_inputs_for  # noqa: E402
from nnforensics.integrity import compare  # noqa: E402
from nnforensics.io import save_model  # noqa: E402
from nnforensics.models import load_model
from nnforensics.permutation import permute  # noqa: E402
from nnforensics.perturbation import perturb  # noqa: E402
from nnforensics.training import Recipe, fit  # noqa: E402
from tests.core.pretrained import ONET_INPUTS, ONet, finetune_on_mnist, weights_file  # noqa: E402

OUT = ROOT / "results" / "calibration"
SHORT = Recipe(optimizer="adam", lr=2e-3, weight_decay=0.0, epochs=1, schedule="cosine", augment=False,
               batch_size=128)


def cached(name: str, arch: str, width: float, seed: int, recipe: Recipe, limit: int | None):
    path = OUT / f"{name}-s{seed}.safetensors"
    if not path.exists():
        from dataclasses import replace

        loaded = fit(arch, "mnist", replace(recipe, init_seed=seed, data_seed=seed), arch_args={"width": width},
                     limit=limit, quiet=True)
        save_model(loaded.model, path, loaded.meta)
    return load_model(path)


def finetune(model: torch.nn.Module, seed: int = 0, **options) -> torch.nn.Module:
    """The attacker trains further on real MNIST: 100 steps of SGD, lr 0.01, batch 64 (seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return finetune_on_mnist(model, 100, 0.01, batch=64, **options)


#: (permutation seed, perturbation seed) of each trial: noise and fine-tuning are random, so
#: every case is measured three times.
TRIALS = ((4, 1), (9, 2), (13, 3))


def cases(model: torch.nn.Module, inputs: torch.Tensor, tune) -> list[tuple[str, str, int, torch.nn.Module]]:
    """(case, level, trial, suspect) for every modification of every trial."""
    out = []
    for trial, (perm_seed, seed) in enumerate(TRIALS):
        permuted = permute(model, seed=perm_seed, example_inputs=inputs).model
        out.append(("permuted", "", trial, permuted))
        out += [("noise", f"Ω={om:g}", trial, perturb(permuted, "noise", om, seed=seed).model)
                for om in (0.25, 0.5, 1, 2, 4)]
        out += [("quantization", f"{b} bits", trial, perturb(permuted, "quantize", b).model) for b in (2, 4, 8, 12, 16)]
        out += [("pruning", f"T={t:g}", trial, perturb(permuted, "prune", t).model) for t in (0.5, 0.9)]
        out.append(("scaling", "x2, 10 % of the penultimate layer", trial,
                    perturb(permuted, "scale", 2.0, target="penultimate", fraction=0.1, seed=seed).model))
        out.append(("fine-tuning", "SGD lr 0.01, 100 steps", trial, tune(permuted, seed)))
    return out


def models() -> list[tuple[str, torch.nn.Module, torch.Tensor, list[tuple[str, torch.nn.Module]], object]]:
    """(label, model, example inputs, unrelated twins, fine-tuning attack) of every model."""
    OUT.mkdir(parents=True, exist_ok=True)
    out = []
    demo = [cached("lenet-demo", "lenet", 1.0, seed, DEMO_RECIPE, None) for seed in (0, 1)]
    out.append(("LeNet (demo recipe)", demo[0].model, example_inputs_for(demo[0].meta),
                [("another seed", demo[1].model)], finetune))
    for label, arch, width in (("LeNet (short)", "lenet", 1.0), ("VGG-11-bn w1/8", "vgg11_bn", 0.125),
                               ("ResNet-18 w1/8", "resnet18", 0.125)):
        nets = [cached(f"{arch}-w{width}", arch, width, seed, SHORT, 10000) for seed in (0, 1, 2)]
        out.append((label, nets[0].model, example_inputs_for(nets[0].meta),
                    [(f"seed {seed}", net.model) for seed, net in zip((1, 2), nets[1:])], finetune))
    path = weights_file("onet")
    if path is not None:
        onet = ONet()
        onet.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        fresh = []
        for seed in (0, 1, 2):
            torch.manual_seed(seed)
            fresh.append((f"fresh initialisation {seed}", ONet().eval()))
        out.append(("ONet (pretrained)", onet.eval(), ONET_INPUTS, fresh,
                    lambda m, seed: finetune(m, image=48, rgb=True, classes=slice(6, 16))))
    else:
        print("facenet-pytorch is not installed: ONet skipped (pip install --no-deps facenet-pytorch==2.6.0)")
    return out


def main() -> None:
    rows = []
    for label, model, inputs, twins, tune in models():
        suspects = cases(model, inputs, tune) + [("unrelated", name, 0, twin) for name, twin in twins]
        for case, level, trial, suspect in suspects:
            start = time.perf_counter()
            result = compare(model, suspect, example_inputs=inputs)
            rows.append({"model": label, "case": case, "level": level, "trial": trial, "verdict": result.verdict,
                         "confidence": result.confidence, "kind": result.kind or "", "detail": result.kind_detail,
                         "similarity": round(result.similarity, 3), "seconds": round(time.perf_counter() - start, 2)})
            print(" | ".join(str(v) for v in rows[-1].values()), flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(OUT / "compare.csv", index=False)
    (ROOT / "docs" / "compare_calibration.md").write_text(page(frame), encoding="utf-8")
    print(f"wrote {OUT / 'compare.csv'} and docs/compare_calibration.md")


def _range(values: pd.Series) -> str:
    low, high = values.min(), values.max()
    return f"{low:.3f}" if low == high else f"{low:.3f}–{high:.3f}"


def page(frame: pd.DataFrame) -> str:
    """The markdown page: what is right overall, then per model and case (ranges over trials)."""
    expected = frame["case"].where(frame["case"].isin(["permuted", "unrelated"]), "derived")
    kinds_ok = (frame["verdict"] != "derived") | (frame["kind"] == frame["case"])
    correct = (frame["verdict"] == expected) & kinds_ok
    derived, unrelated = frame[expected == "derived"], frame[frame["case"] == "unrelated"]
    noise = derived[derived["case"] == "noise"]
    mild = noise[noise["level"] != "Ω=4"]
    lines = [
        "# What `nnf compare` reads, measured",
        "",
        "Generated by `make calibration` (`benchmarks/compare_calibration.py`); do not edit by hand.",
        "Each copy is the original with every permutation group permuted, then modified, in "
        f"{len(TRIALS)} trials (permutation and perturbation seeds); similarity is the share of the",
        "original's neurons re-identified in the suspect (see `nnforensics.integrity.evidence`).",
        "",
        f"- {int(correct.sum())} of {len(frame)} comparisons give the expected verdict and, for copies, the "
        f"kind of change; {int((derived['confidence'] == 'high').sum())} of {len(derived)} copies are called "
        f"derived with high confidence.",
        f"- Unrelated networks ({len(unrelated)} pairs): similarity {_range(unrelated['similarity'])}.",
        f"- Permuted copies: similarity {_range(frame.loc[frame['case'] == 'permuted', 'similarity'])}.",
        f"- Gaussian noise Ω ≤ 2 on every layer: {_range(mild['similarity'])}; Ω = 4 (the networks no longer "
        f"work): {_range(noise.loc[noise['level'] == 'Ω=4', 'similarity'])}.",
    ]
    for case in ("quantization", "pruning", "scaling", "fine-tuning"):
        part = derived[derived["case"] == case]
        lines.append(f"- {case}: similarity {_range(part['similarity'])}, kind read right in "
                     f"{int((part['kind'] == case).sum())} of {len(part)}.")
    lines.append("")
    for model, part in frame.groupby("model", sort=False):
        lines += [f"## {model}", "", "| case | level | verdicts (confidence) | kind read | detail (first trial) | "
                                     "similarity | s |", "|---|---|---|---|---|---|---|"]
        for (case, level), cell in part.groupby(["case", "level"], sort=False):
            verdicts = ", ".join(f"{n} {v} ({c})" for (v, c), n in
                                 cell.groupby(["verdict", "confidence"]).size().items())
            kinds = ", ".join(sorted(set(cell["kind"]) - {""})) or "–"
            lines.append(f"| {case} | {level} | {verdicts} | {kinds} | {cell['detail'].iloc[0]} | "
                         f"{_range(cell['similarity'])} | {cell['seconds'].mean():.1f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
