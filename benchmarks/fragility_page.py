"""Write the measured part of docs/fragility.md from the sweeps of benchmarks/fragility_mnist.sh.

Usage: python benchmarks/fragility_page.py [RESULTS=results/fragility] [PAGE=docs/fragility.md]
Replaces what lies between the page's ``<!-- measured -->`` and ``<!-- /measured -->`` markers;
every number there is computed here from the saved rows; figures are copied to docs/fragility/.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

from nnforensics.experiments.fragility import write_scores
from nnforensics.report.fragility import write_fragility_report

START, END = "<!-- measured -->", "<!-- /measured -->"
ARCHS = ("resnet18_imagenet", "squeezenet1_1_imagenet", "shufflenet_v2_x0_5_imagenet")


def _majority(values: pd.Series) -> tuple[str, float]:
    counts = values.value_counts()
    return counts.index[0], counts.iloc[0] / len(values)


def _stability(verdicts: pd.DataFrame) -> dict[str, float]:
    """Shares of layers whose verdict is the same for every model; across inits at one epoch; across epochs."""
    local = verdicts[verdicts["scope"] == "local"]
    same_all = local.groupby("layer")["verdict"].nunique().eq(1).mean()
    by_epoch = local.groupby(["layer", "epoch"])["verdict"].nunique().eq(1).mean()
    by_init = local.groupby(["layer", "init"])["verdict"].nunique().eq(1).mean()
    return {"all models": same_all, "across inits (same epoch)": by_epoch, "across epochs (same init)": by_init}


def _layer_table(verdicts: pd.DataFrame) -> list[str]:
    local = verdicts[verdicts["scope"] == "local"]
    epochs = sorted(local["epoch"].unique())
    head = "| layer | depth | " + " | ".join(f"epoch {e:g}" for e in epochs) + " | reset (all models) |"
    lines = [head, "|" + "---|" * (len(epochs) + 3)]
    layers = list(dict.fromkeys(local["layer"]))
    for depth, layer in enumerate(layers):
        part = local[local["layer"] == layer]
        cells = []
        for epoch in epochs:
            sub = part[part["epoch"] == epoch]
            label, share = _majority(sub["verdict"])
            cells.append(f"{label} {round(share * len(sub))}/{len(sub)}")
        reset = part["reset"].value_counts() if "reset" in part else pd.Series(dtype=int)
        reset_text = ", ".join(f"{k} {v}/{len(part)}" for k, v in reset.items()) if len(reset) else "–"
        lines.append(f"| {layer} | {depth + 1}/{len(layers)} | " + " | ".join(cells) + f" | {reset_text} |")
    return lines


def _where(verdicts: pd.DataFrame) -> str:
    """Mean relative depth (0 first layer, 1 last) of the layer-model pairs of each verdict."""
    local = verdicts[verdicts["scope"] == "local"].copy()
    order = {layer: i for i, layer in enumerate(dict.fromkeys(local["layer"]))}
    local["depth"] = local["layer"].map(order) / max(1, len(order) - 1)
    parts = []
    for verdict in ("fragile", "robust", "antifragile"):
        sub = local[local["verdict"] == verdict]
        parts.append(f"{verdict} {len(sub)} ({len(sub) / len(local):.0%}, mean depth "
                     f"{sub['depth'].mean():.2f})" if len(sub) else f"{verdict} 0")
    return "; ".join(parts)


def _scores_summary(scores: pd.DataFrame) -> list[str]:
    local = scores[scores["scope"] == "local"]
    lines = ["| filter | mean score clean | mean score adv | mean adv - clean | curves with adv - clean > 0 | "
             "fragile | robust | antifragile |", "|---|---|---|---|---|---|---|---|"]
    for kind, part in local.groupby("filter", sort=False):
        counts = part["verdict"].value_counts()
        lines.append(f"| {kind} | {part['score_clean'].mean():+.3f} | {part['score_adv'].mean():+.3f} | "
                     f"{part['score_diff'].mean():+.3f} | {(part['score_diff'] > 0).mean():.0%} | "
                     + " | ".join(str(counts.get(v, 0)) for v in ("fragile", "robust", "antifragile")) + " |")
    return lines


def _accuracy(scores: pd.DataFrame) -> str:
    first = scores.drop_duplicates("model")
    by_epoch = first.groupby("epoch")[["base_clean", "base_adv"]].agg(["min", "max"])
    return "; ".join(f"epoch {e:g}: clean {r[('base_clean', 'min')]:.1f}–{r[('base_clean', 'max')]:.1f} %, "
                     f"FGSM {r[('base_adv', 'min')]:.1f}–{r[('base_adv', 'max')]:.1f} %"
                     for e, r in by_epoch.iterrows())


def main(results: Path, out: Path) -> None:
    figures = out.parent / "fragility"
    figures.mkdir(parents=True, exist_ok=True)
    lines = ["<!-- written by benchmarks/fragility_page.py from results/fragility (make fragility); do not edit -->", ""]
    timing = (results / "timing.txt").read_text().strip().splitlines() if (results / "timing.txt").exists() else []
    for arch in ARCHS:
        folder = results / arch
        if not (folder / "config.json").exists():
            continue
        scores, verdicts = write_scores(folder)
        write_fragility_report(folder)
        n_models = verdicts["model"].nunique()
        global_rows = verdicts[verdicts["scope"] == "global"]
        lines += [f"### {arch}", "",
                  f"{n_models} models, intact accuracy on the 500 test images: {_accuracy(scores)}.", "",
                  "Local analysis, verdict per layer (most frequent over the 3 initialisations, with its count):", "",
                  *_layer_table(verdicts), "",
                  "Local curves per filter, over all models and layers:", "", *_scores_summary(scores), "",
                  f"Layer-model verdicts by depth: {_where(verdicts)}.", "",
                  "Same verdict for a layer: " + "; ".join(f"{k} {v:.0%}" for k, v in _stability(verdicts).items())
                  + " of layers (and layer-epoch / layer-init pairs).", "",
                  "Global analysis (every layer filtered together): "
                  + ", ".join(f"{v} {c}/{n_models}" for v, c in global_rows["verdict"].value_counts().items())
                  + "; by filter: " + "; ".join(
                      f"{k}: " + ", ".join(f"{v} {c}" for v, c in part["verdict"].value_counts().items())
                      for k, part in scores[scores["scope"] == "global"].groupby("filter", sort=False)) + ".", ""]
        for name in ("scores-by-epoch-local.png",):
            if (folder / name).exists():
                shutil.copy(folder / name, figures / f"{arch}-{name}")
                lines += [f"![{arch}: score against epoch](fragility/{arch}-{name})", ""]
        last = sorted(folder.glob("scores-*s0.epoch3-local.png"))
        for path in last:
            shutil.copy(path, figures / f"{arch}-heatmap.png")
            lines += [f"![{arch}: layers x filters, init 0 epoch 3](fragility/{arch}-heatmap.png)", ""]
        curves = sorted(folder.glob("curves-*s0.epoch3-local-high-pass.png"))
        for path in curves:
            shutil.copy(path, figures / f"{arch}-curves-high-pass.png")
            lines += [f"![{arch}: high-pass curves, init 0 epoch 3](fragility/{arch}-curves-high-pass.png)", ""]
    lines += ["### Timing", "", *[f"- {t}" for t in timing]]
    speed = results / "speed.txt"
    if speed.exists():
        lines.append(f"- {speed.read_text().strip()}")
    page = out.read_text() if out.exists() else f"{START}\n{END}\n"
    if START not in page or END not in page:
        raise SystemExit(f"{out} has no {START} ... {END} markers")
    head, rest = page.split(START, 1)
    tail = rest.split(END, 1)[1]
    out.write_text(head + START + "\n" + "\n".join(lines) + "\n" + END + tail)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/fragility"),
         Path(sys.argv[2] if len(sys.argv) > 2 else "docs/fragility.md"))
