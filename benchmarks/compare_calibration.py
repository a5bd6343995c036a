"""What `nnf compare` says about copies and about unrelated networks, measured.

Every number that README.md and the docs quote about `compare` (similarity of permuted,
noisy, quantized, pruned, scaled and fine-tuned copies; of independently trained
networks; which kind of change is read) comes from this script:

    make calibration            # or: .venv/bin/python benchmarks/compare_calibration.py

Models (trained here on the real MNIST, cached in results/calibration/):
  * LeNet, 8 epochs of SGD (the `nnf demo` model), unrelated twin: another seed;
  * LeNet, narrow VGG-11-bn and ResNet-18 (width 1/8): 1 epoch of Adam on 10,000 images,
    unrelated twin: the same recipe from another seed;
  * MTCNN's ONet with its published face-detection weights (a real pretrained network,
    from the facenet-pytorch wheel), unrelated twin: a fresh initialisation.
Each copy is the original with every permutation group permuted, then modified.
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
from nnforensics.io import load_model, save_model  # noqa: E402
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


def finetune(model: torch.nn.Module, **options) -> torch.nn.Module:
    """The attacker trains further on real MNIST: 100 steps of SGD, lr 0.01, batch 64."""
    return finetune_on_mnist(model, 100, 0.01, batch=64, **options)


def cases(model: torch.nn.Module, inputs: torch.Tensor, tune) -> list[tuple[str, str, torch.nn.Module]]:
    permuted = permute(model, seed=4, example_inputs=inputs).model
    out = [("permuted", "", permuted)]
    out += [("noise", f"Ω={om:g}", perturb(permuted, "noise", om, seed=1).model) for om in (0.25, 0.5, 1, 2, 4)]
    out += [("quantization", f"{b} bits", perturb(permuted, "quantize", b).model) for b in (2, 4, 8, 12, 16)]
    out += [("pruning", f"T={t:g}", perturb(permuted, "prune", t).model) for t in (0.5, 0.9)]
    out.append(("scaling", "x2, 10 % of the penultimate layer",
                perturb(permuted, "scale", 2.0, target="penultimate", fraction=0.1, seed=1).model))
    out.append(("fine-tuning", "SGD lr 0.01, 100 steps", tune(permuted)))
    return out


def models() -> list[tuple[str, torch.nn.Module, torch.Tensor, torch.nn.Module, object]]:
    OUT.mkdir(parents=True, exist_ok=True)
    out = []
    demo = cached("lenet-demo", "lenet", 1.0, 0, DEMO_RECIPE, None)
    demo_twin = cached("lenet-demo", "lenet", 1.0, 1, DEMO_RECIPE, None)
    out.append(("LeNet (demo recipe)", demo.model, example_inputs_for(demo.meta), demo_twin.model, finetune))
    for label, arch, width in (("LeNet (short)", "lenet", 1.0), ("VGG-11-bn w1/8", "vgg11_bn", 0.125),
                               ("ResNet-18 w1/8", "resnet18", 0.125)):
        a = cached(f"{arch}-w{width}", arch, width, 0, SHORT, 10000)
        b = cached(f"{arch}-w{width}", arch, width, 1, SHORT, 10000)
        out.append((label, a.model, example_inputs_for(a.meta), b.model, finetune))
    path = weights_file("onet")
    if path is not None:
        onet = ONet()
        onet.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        torch.manual_seed(0)
        out.append(("ONet (pretrained)", onet.eval(), ONET_INPUTS, ONet().eval(),
                    lambda m: finetune(m, image=48, rgb=True, classes=slice(6, 16))))
    else:
        print("facenet-pytorch is not installed: ONet skipped (pip install --no-deps facenet-pytorch==2.6.0)")
    return out


def main() -> None:
    rows = []
    for label, model, inputs, twin, tune in models():
        suspects = cases(model, inputs, tune) + [("unrelated", "another seed" if "ONet" not in label
                                                  else "fresh initialisation", twin)]
        for case, level, suspect in suspects:
            start = time.perf_counter()
            result = compare(model, suspect, example_inputs=inputs)
            rows.append({"model": label, "case": case, "level": level, "verdict": result.verdict,
                         "confidence": result.confidence, "kind": result.kind or "", "detail": result.kind_detail,
                         "similarity": round(result.similarity, 3), "seconds": round(time.perf_counter() - start, 2)})
            print(" | ".join(str(v) for v in rows[-1].values()), flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(OUT / "compare.csv", index=False)
    (ROOT / "docs" / "compare_calibration.md").write_text(page(frame), encoding="utf-8")
    print(f"wrote {OUT / 'compare.csv'} and docs/compare_calibration.md")


def page(frame: pd.DataFrame) -> str:
    expected = frame["case"].where(frame["case"].isin(["permuted", "unrelated"]), "derived")
    kinds_ok = (frame["verdict"] != "derived") | (frame["kind"] == frame["case"])
    correct = (frame["verdict"] == expected) & kinds_ok
    derived = frame[expected == "derived"]
    unrelated = frame[frame["case"] == "unrelated"]
    lines = [
        "# What `nnf compare` reads, measured",
        "",
        "Generated by `make calibration` (`benchmarks/compare_calibration.py`); do not edit by hand.",
        "Each copy is the original with every permutation group permuted, then modified; similarity is the",
        "share of the original's neurons re-identified in the suspect (see `nnforensics.integrity.evidence`).",
        "",
        f"- {int(correct.sum())} of {len(frame)} comparisons give the expected verdict and kind of change.",
        f"- Unrelated networks: similarity {unrelated['similarity'].min():.3f} to {unrelated['similarity'].max():.3f}.",
        f"- Derived copies: similarity {derived['similarity'].min():.3f} to {derived['similarity'].max():.3f} "
        f"(lowest: {derived.loc[derived['similarity'].idxmin(), 'model']}, "
        f"{derived.loc[derived['similarity'].idxmin(), 'case']} {derived.loc[derived['similarity'].idxmin(), 'level']}).",
        f"- Permuted copies: similarity {frame.loc[frame['case'] == 'permuted', 'similarity'].min():.3f} (all models).",
        "",
    ]
    for model, part in frame.groupby("model", sort=False):
        lines += [f"## {model}", "", "| case | level | verdict | confidence | kind read | detail | similarity | s |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r.case} | {r.level} | {r.verdict} | {r.confidence} | {r.kind} | {r.detail} | "
                  f"{r.similarity:.3f} | {r.seconds:.1f} |" for r in part.itertuples()]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
