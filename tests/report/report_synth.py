"""Synthetic results directories in the sweep engine's layout (no model is run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_LEVELS = {
    "noise": [0, 2, 4, 6, 8, 10],
    "finetune": [2, 6, 10],
    "quantize": [16, 8, 4, 2],
    "prune": [0.0, 0.9, 0.95, 0.98, 0.99],
}
GROUPS = [("features.0", 6), ("features.3", 16), ("classifier.0", 120)]


def synthetic_rows(attack: str, levels: list, seeds: int, methods: list[str], model: str,
                   ber: bool = False, seed: int = 0) -> pd.DataFrame:
    """Rows like robustness_cell's: Ψ falls at the strongest levels (more for later methods)."""
    rng = np.random.default_rng(seed)
    strength = np.linspace(0, 1, len(levels))  # levels are listed weakest first
    rows = []
    for li, level in enumerate(levels):
        for s in range(seeds):
            error = 1.0 + 40 * strength[li] ** 2 + rng.normal(0, 0.3)  # one perturbed model per (level, seed)
            ber_raw = 45 + rng.uniform(0, 10)
            for mi, method in enumerate(methods):
                drop = max(0.0, strength[li] - 0.6 + 0.2 * mi) * 40
                psi = 100.0 if drop == 0 else float(np.clip(100 - drop - rng.uniform(0, 3), 0, 100))
                row = {
                    "cell_id": f"{attack}-{li}-{s}-{method}", "model": model, "arch": "lenet", "attack": attack,
                    "level": level, "seed": s, "method": method, "target": None, "psi": psi, "error": error,
                    "base_error": 1.0, "collisions": int(drop > 0 and method == "argmax") * (li + 1),
                    "n_neurons": sum(n for _, n in GROUPS), "n_groups": len(GROUPS),
                    "t_permute_s": 0.01 + rng.uniform(0, 0.005), "t_perturb_s": 0.05 + rng.uniform(0, 0.01),
                    "t_resync_s": 0.002 * (mi + 1) + rng.uniform(0, 0.001), "max_output_diff": 1e-6,
                    "target_layer": "classifier.0", "data": "mnist",
                }
                row["t_total_s"] = row["t_permute_s"] + row["t_perturb_s"] + row["t_resync_s"]
                if ber:
                    row["ber_raw"] = ber_raw
                    row["ber_resync"] = 0.0 if psi == 100 else (100 - psi) / 2
                rows.append(row)
    return pd.DataFrame(rows)


def synthetic_groups(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for row in rows.itertuples(index=False):
        for i, (name, size) in enumerate(GROUPS):
            psi = 100.0 if i < 2 else row.psi  # only the last group suffers
            out.append({"cell_id": row.cell_id, "group": name, "size": size, "psi": psi, "collisions": 0})
    return pd.DataFrame(out)


def write_heatmaps(path: Path, n: int = 120, attack: str = "noise", level=10, group: str = "classifier.0") -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(n, 40))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    perm = rng.permutation(n)
    noisy = w[perm] + rng.normal(0, 0.3, size=w.shape)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    np.savez_compressed(
        path, original=w @ w.T, permuted=w @ w[perm].T, perturbed=w @ noisy.T, perm=perm,
        group=np.asarray(group), level=np.asarray(level), attack=np.asarray(attack), seed=np.asarray(0),
    )


def write_sweep(directory: Path, attack: str = "noise", levels: list | None = None, seeds: int = 3,
                methods: tuple[str, ...] = ("lap", "argmax", "rank"), model: str = "lenet-mnist.safetensors",
                layout: str = "results", groups: bool = True, heatmaps: bool = True, ber: bool = False,
                timing: bool = True, keep_cells: int | None = None) -> pd.DataFrame:
    """Write a results directory; ``layout``: "results" (parquet + csv), "csv" (csv only) or "cells" (interrupted).

    Returns the rows written (for "cells", only the first ``keep_cells`` cells' rows).
    """
    levels = list(DEFAULT_LEVELS[attack] if levels is None else levels)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"kind": "robustness", "model": model, "arch": "lenet", "data": "mnist", "attack": attack,
              "levels": levels, "seeds": list(range(seeds)), "methods": list(methods), "target": None}
    (directory / "config.json").write_text(json.dumps(config))
    rows = synthetic_rows(attack, levels, seeds, list(methods), model, ber=ber)
    if not timing:  # fewer figures: keeps the tests fast
        rows = rows.drop(columns=[c for c in rows.columns if c.startswith("t_")])
    group_rows = synthetic_groups(rows)
    if layout == "cells":
        cells_dir = directory / "cells"
        cells_dir.mkdir()
        # One engine cell = one (level, seed), one row per method.
        keys = list(dict.fromkeys(zip(rows["level"], rows["seed"])))[: keep_cells]
        kept = []
        for i, (level, seed) in enumerate(keys):
            part = rows[(rows["level"] == level) & (rows["seed"] == seed)]
            part.to_parquet(cells_dir / f"c{i:04d}.parquet", index=False)
            own_groups = group_rows[group_rows["cell_id"].isin(part["cell_id"])]
            own_groups.to_parquet(cells_dir / f"c{i:04d}.groups.parquet", index=False)
            kept.append(part)
        rows = pd.concat(kept, ignore_index=True)
    elif layout == "csv":
        rows.to_csv(directory / "results.csv", index=False)
    else:
        rows.to_parquet(directory / "results.parquet", index=False)
        rows.to_csv(directory / "results.csv", index=False)
        if groups:
            group_rows.to_parquet(directory / "groups.parquet", index=False)
    if heatmaps and layout != "cells":
        write_heatmaps(directory / "heatmaps.npz", attack=attack, level=levels[-1])
    return rows
