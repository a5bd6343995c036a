"""Write docs/results.md from the sweeps of results/run_all.sh and results/run_watermark.sh.

Usage (from the repository root, after the sweeps):  .venv/bin/python docs/make_results.py
(``make results`` runs the sweeps and then this; ``RESULTS=DIR`` reads the sweeps from DIR.)
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
from paper_tables import PAPER  # noqa: E402

RESULTS, IMG = Path(os.environ.get("RESULTS", ROOT / "results")).resolve(), ROOT / "docs" / "img"
MODELS = {"vgg16_bn": "VGG-16-bn (width 1/4)", "resnet18": "ResNet-18 (width 1/4)"}
ATTACKS = {"noise": ("Table 1 — Gaussian noise", "Ω"), "finetune": ("Table 2 — fine-tuning", "Θ (%)"),
           "quantize": ("Table 3 — quantization", "B (bits)"), "prune": ("Table 4 — magnitude pruning", "T")}
METHODS = ("lap", "argmax", "rank")


def pm(series: pd.Series) -> str:
    mean, std = series.mean(), series.std()
    exact = abs(mean - round(mean)) < 1e-9 and (std == 0 or pd.isna(std))
    text = f"{mean:.0f}" if exact else f"{mean:.2f}"
    if pd.isna(std):
        return text
    return f"{text} ± 0" if std == 0 else f"{text} ± {std:.2f}"


def load(model: str, attack: str) -> pd.DataFrame | None:
    path = RESULTS / f"{model}-{attack}" / "results.parquet"
    return pd.read_parquet(path) if path.exists() else None


def attack_table(attack: str) -> list[str]:
    title, symbol = ATTACKS[attack]
    frames = {m: load(m, attack) for m in MODELS}
    if all(f is None for f in frames.values()):
        return [f"### {title}", "", "(not run)", ""]
    head = [symbol]
    for model in MODELS:
        short = MODELS[model].split("-")[0]
        head += [f"{short} Ψ {m}" for m in METHODS] + [f"{short} err %"]
    head += ["paper VGG16 Ψ / err", "paper ResNet18 Ψ / err"]
    levels = sorted({lv for f in frames.values() if f is not None for lv in f["level"]},
                    reverse=attack == "quantize")
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for level in levels:
        row = [f"{level:g}"]
        for model, frame in frames.items():
            if frame is None:
                row += ["–"] * (len(METHODS) + 1)
                continue
            at = frame[frame["level"] == level]
            row += [pm(at[at["method"] == m]["psi"]) if (at["method"] == m).any() else "–" for m in METHODS]
            row.append(pm(at.drop_duplicates("seed")["error"]))
        paper = PAPER[attack].get(round(level, 2) if attack == "prune" else int(level) if float(level).is_integer() else level)
        row += [f"{paper[0]:g} / {paper[1]:g}", f"{paper[2]:g} / {paper[3]:g}"] if paper else ["–", "–"]
        lines.append("| " + " | ".join(row) + " |")
    seeds = {m: f["seed"].nunique() for m, f in frames.items() if f is not None}
    lines += ["", f"Seeds: {', '.join(f'{m} {n}' for m, n in seeds.items())}. Mean ± sample std over seeds.", ""]
    for model in MODELS:
        png = RESULTS / f"{model}-{attack}" / f"robustness-{attack}.png"
        if png.exists():
            IMG.mkdir(parents=True, exist_ok=True)
            target = IMG / f"{model}-{attack}.png"
            shutil.copyfile(png, target)
            lines += [f"![{MODELS[model]}: {title}](img/{target.name})", ""]
    return lines


def sweep_table(name: str, methods: tuple[str, ...] = METHODS) -> list[str]:
    """Sweep directory ``name`` (and ``name-low``, its extra levels) as level x (Psi per method, error)."""
    paths = [RESULTS / d / "results.parquet" for d in (name, f"{name}-low")]
    frames = [pd.read_parquet(p) for p in paths if p.exists()]
    if not frames:
        return ["(not run)", ""]
    frame = pd.concat(frames, ignore_index=True)
    head = ["level"] + [f"Ψ {m}" for m in methods] + ["err %"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for level in sorted(frame["level"].unique()):
        at = frame[frame["level"] == level]
        cells = [pm(at[at["method"] == m]["psi"]) if (at["method"] == m).any() else "–" for m in methods]
        lines.append("| " + " | ".join([f"{level:g}", *cells, pm(at.drop_duplicates("seed")["error"])]) + " |")
    dirs = " and ".join(f"`{p.parent.name}`" for p in paths if p.exists())
    return lines + ["", f"Seeds: {frame['seed'].nunique()}; {dirs} in the results directory.", ""]


def watermark_table() -> list[str]:
    lines = ["| attack | level | BER attack alone | BER permuted + attack | BER after lap | BER after argmax | Ψ lap | err % |",
             "|---|---|---|---|---|---|---|---|"]
    found = False
    for attack in ATTACKS:
        path = RESULTS / f"lenet-wm-{attack}" / "results.parquet"
        if not path.exists():
            continue
        found = True
        frame = pd.read_parquet(path)
        for level in sorted(frame["level"].unique(), reverse=attack == "quantize"):
            at = frame[frame["level"] == level]
            by = {m: at[at["method"] == m] for m in ("lap", "argmax")}
            lines.append(f"| {attack} | {level:g} | {pm(at.drop_duplicates('seed')['ber_attack'])} | "
                         f"{pm(at.drop_duplicates('seed')['ber_raw'])} | {pm(by['lap']['ber_resync'])} | "
                         f"{pm(by['argmax']['ber_resync'])} | {pm(by['lap']['psi'])} | "
                         f"{pm(at.drop_duplicates('seed')['error'])} |")
    png = RESULTS / "lenet-wm-noise" / "watermark.png"
    out = lines if found else ["(not run)"]
    for attack in ATTACKS:
        png = RESULTS / f"lenet-wm-{attack}" / "watermark.png"
        if png.exists():
            IMG.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, IMG / f"watermark-{attack}.png")
            out += ["", f"![watermark BER, {attack}](img/watermark-{attack}.png)"]
    return out


def base_errors() -> str:
    found = []
    for model, name in MODELS.items():
        frame = load(model, "noise")
        if frame is not None:
            found.append(f"{frame['base_error'].iloc[0]:.2f} % ({name.split(' ')[0]})")
    return ", ".join(found) or "(not run)"


def detection_limits(n_bits: int = 64, fpr: float = 1e-6) -> tuple[str, str]:
    from nnforensics.watermark.scheme import detection_threshold

    wrong = n_bits - detection_threshold(n_bits, fpr)
    return str(wrong), f"{100 * wrong / n_bits:.1f}"


def main() -> None:
    template = (ROOT / "docs" / "results.template.md").read_text(encoding="utf-8")
    tables = []
    for attack in ATTACKS:
        tables += attack_table(attack)
    max_errors, max_ber = detection_limits()
    text = template.replace("{{TABLES}}", "\n".join(tables)).replace("{{WATERMARK}}", "\n".join(watermark_table()))
    for name in ("vgg16_bn-noise-all", "resnet18-noise-all", "resnet18-noise-residual-stream"):
        text = text.replace("{{" + name + "}}", "\n".join(sweep_table(name)))
    text = (text.replace("{{BASE_ERRORS}}", base_errors()).replace("{{MAX_ERRORS}}", max_errors)
            .replace("{{MAX_BER}}", max_ber))
    (ROOT / "docs" / "results.md").write_text(text, encoding="utf-8")
    print(f"wrote {ROOT / 'docs' / 'results.md'}")


if __name__ == "__main__":
    main()
