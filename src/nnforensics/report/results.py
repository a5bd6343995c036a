"""Reading robustness sweep results from disk.

A results directory, as the sweep engine writes it::

    config.json        the sweep's settings (attack, levels, seeds, methods, ...)
    results.parquet    one row per (level, seed, method) cell  (results.csv: same rows)
    cells/*.parquet    the same rows, one file per finished cell (an interrupted sweep
                       may have only these)
    groups.parquet     per-group Psi: cell_id, group, size, psi
    heatmaps.npz       original / permuted / perturbed cosine matrices of one group

A *parent* directory holding several such directories (e.g. one per attack) is read as
all of them. Nothing here writes to the results directories.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, CorruptFileError, DataError
from ..io.jsonfile import read_json
from .attacks import AttackStyle, attack_style

#: Columns every results row must have.
REQUIRED_COLUMNS = ("level", "seed", "method", "psi", "error")
#: Columns that identify a cell rather than measure it (never averaged).
ID_COLUMNS = ("cell_id", "model", "arch", "attack", "level", "seed", "method", "target")
GROUP_REQUIRED_COLUMNS = ("cell_id", "group", "psi")
HEATMAP_KEYS = ("original", "permuted", "perturbed")
RESULT_FILES = ("results.parquet", "results.csv")
CELLS_DIR = "cells"
FAILURES_DIR = "failures"
#: Watermark columns (Fig. 7): BER % after permutation + attack, and after re-synchronization
#: (``ber_attack``, the attack alone without permutation, is optional).
BER_COLUMNS = ("ber_raw", "ber_resync")


class CorruptResultsError(CorruptFileError, DataError):
    """A results file that cannot be parsed (both a corrupt file and bad data)."""


@dataclass(frozen=True)
class Heatmaps:
    """Cosine-similarity matrices of one group (paper Fig. 6)."""

    original: np.ndarray  # original vs original
    permuted: np.ndarray  # original vs permuted
    perturbed: np.ndarray  # original vs permuted + perturbed
    group: str = ""
    level: Any = None
    attack: str = ""


@dataclass
class Sweep:
    """The rows of one (attack, model, target) sweep, with what came with them."""

    name: str  # unique among the report's sweeps, safe in file names
    path: Path
    config: dict
    rows: pd.DataFrame
    attack: str
    model: str
    arch: str = ""
    target: str | None = None
    groups: pd.DataFrame | None = None  # cell_id, group, size, psi + level, seed, method
    heatmaps: Heatmaps | None = None
    source: str = ""
    expected_cells: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def style(self) -> AttackStyle:
        style = attack_style(self.attack)
        if style.key == "prune" and self.config.get("global_prune"):
            style = replace(style, title="global magnitude pruning")
        return style

    @property
    def label(self) -> str:
        """``"Gaussian noise — lenet-mnist.safetensors"``."""
        title = self.style.title
        text = f"{title[:1].upper()}{title[1:]} — {self.model}"
        return f"{text} (target {self.target})" if self.target else text

    @property
    def levels(self) -> list:
        """Levels from the weakest to the strongest attack."""
        return self.style.strength_order(self.rows["level"].unique().tolist())

    @property
    def methods(self) -> list[str]:
        """Methods in the config's order, then any others in order of appearance."""
        seen = list(dict.fromkeys(self.rows["method"].tolist()))
        wanted = [str(m) for m in self.config.get("methods", []) if isinstance(m, str)]
        return [m for m in wanted if m in seen] + [m for m in seen if m not in wanted]

    @property
    def n_cells(self) -> int:
        return len(self.rows)

    @property
    def complete(self) -> bool:
        return self.expected_cells is None or self.n_cells >= self.expected_cells

    @property
    def has_watermark(self) -> bool:
        return all(c in self.rows.columns and self.rows[c].notna().any() for c in BER_COLUMNS)

    def metric_columns(self) -> list[str]:
        """Numeric columns that measure something (psi, error, timings, BER, ...)."""
        return [
            c for c in self.rows.columns
            if c not in ID_COLUMNS and pd.api.types.is_numeric_dtype(self.rows[c])
            and not pd.api.types.is_bool_dtype(self.rows[c])
        ]


# --------------------------------------------------------------------------- finding


def is_results_dir(path: Path) -> bool:
    """True if ``path`` holds results (a results file or finished cells)."""
    return any((path / name).is_file() for name in RESULT_FILES) or any((path / CELLS_DIR).glob("*.parquet"))


def find_results_dirs(paths: list[str | Path] | str | Path) -> list[Path]:
    """The results directories named by ``paths``: each one itself, or its sub-directories."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise ConfigError("no results directory given")
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise DataError(f"results directory {str(path)!r} does not exist")
        if not path.is_dir():
            raise DataError(f"{str(path)!r} is a file; give the results directory that holds it")
        if is_results_dir(path):
            found.append(path)
            continue
        children = sorted(p for p in path.iterdir() if p.is_dir() and is_results_dir(p))
        if not children:
            hint = " (it has a config.json: has the sweep finished any cell yet?)" if (path / "config.json").exists() else ""
            raise DataError(
                f"no results in {str(path)!r}{hint}: expected results.parquet, results.csv or "
                f"cells/*.parquet there or in its sub-directories"
            )
        found.extend(children)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


# --------------------------------------------------------------------------- reading files


def read_table(path: Path) -> pd.DataFrame:
    """A parquet or CSV file as a DataFrame, with a clear error when it cannot be read."""
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow and pandas raise many types for bad files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CorruptResultsError(f"cannot read {str(path)!r}: {reason}") from err


def read_config(directory: Path) -> dict:
    """``config.json`` as a dict (empty if there is none)."""
    path = directory / "config.json"
    if not path.exists():
        return {}
    try:  # bounded and strict (a results folder may come from someone else)
        config = read_json(path, "sweep configuration", allow_nan=True)
    except CorruptFileError as err:
        raise ConfigError(str(err)) from None
    if not isinstance(config, dict):
        raise ConfigError(f"{str(path)!r} must hold a JSON object, not {type(config).__name__}")
    return config


def _cell_table_name(path: Path) -> str:
    """``results`` for ``cells/<id>.parquet``, ``t`` for an extra table ``cells/<id>.<t>.parquet``."""
    parts = path.name[: -len(".parquet")].rsplit(".", 1)
    return parts[1] if len(parts) == 2 else "results"


def _read_cells(directory: Path) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """Result rows and per-group rows found in ``cells/*.parquet`` (other extra tables are ignored)."""
    rows, groups = [], []
    for path in sorted((directory / CELLS_DIR).glob("*.parquet")):
        table = _cell_table_name(path)
        if table in ("results", "groups"):
            df = read_table(path)
            if len(df):  # a cell without rows is written as an empty frame
                (rows if table == "results" else groups).append(df)
    return rows, groups


def _dedupe_cells(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, method), the last one read winning (cells are newer than results.parquet)."""
    key = [c for c in ("cell_id", "method") if c in df.columns]
    if "cell_id" not in key:
        key = [c for c in ("attack", "model", "target", "level", "seed", "method") if c in df.columns]
    return df.drop_duplicates(subset=key, keep="last").reset_index(drop=True)


def read_rows(directory: Path) -> tuple[pd.DataFrame, str, list[pd.DataFrame]]:
    """Rows of one directory, where they came from, and any per-cell group tables.

    ``results.parquet`` is used as is unless ``cells/`` holds newer files (an interrupted
    or resumed sweep): then the cells are merged over it.
    """
    parquet, csv = directory / "results.parquet", directory / "results.csv"
    cell_files = [p for p in sorted((directory / CELLS_DIR).glob("*.parquet")) if _cell_table_name(p) == "results"]
    newest_cell = max((p.stat().st_mtime for p in cell_files), default=None)
    base: pd.DataFrame | None = None
    source = ""
    if parquet.is_file():
        base, source = read_table(parquet), "results.parquet"
    elif csv.is_file() and not cell_files:
        base, source = read_table(csv), "results.csv"
    cell_groups: list[pd.DataFrame] = []
    if cell_files and (base is None or newest_cell > parquet.stat().st_mtime):
        cell_rows, cell_groups = _read_cells(directory)
        frames = ([base] if base is not None else []) + cell_rows
        frames = [f for f in frames if len(f.columns)]
        if not frames:
            raise DataError(f"no result rows in {str(directory / CELLS_DIR)!r}")
        base = _dedupe_cells(pd.concat(frames, ignore_index=True))
        source = f"{source} + newer cells/*.parquet" if source else f"cells/*.parquet, {len(cell_rows)} files, not consolidated"
    if base is None:
        raise DataError(f"no results in {str(directory)!r}: expected results.parquet, results.csv or cells/*.parquet")
    return base, source, cell_groups


def _coerce_numeric(df: pd.DataFrame, column: str, where: Path) -> None:
    values = pd.to_numeric(df[column], errors="coerce")
    bad = df[column][values.isna() & df[column].notna()]
    if len(bad):
        raise DataError(f"column {column!r} in {str(where)!r} must be numeric; found {str(bad.iloc[0])!r}")
    df[column] = values


def validate_rows(df: pd.DataFrame, config: dict, where: Path) -> pd.DataFrame:
    """Check the required columns and types; fill attack/model/arch/target from the config."""
    if len(df) == 0:
        raise DataError(f"no result rows in {str(where)!r}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"results in {str(where)!r} lack column(s) {', '.join(missing)} "
            f"(have: {', '.join(map(str, df.columns))})"
        )
    df = df.copy()
    for column in ("level", "seed", "psi", "error"):
        _coerce_numeric(df, column, where)
    if df["level"].isna().any():
        raise DataError(f"column 'level' in {str(where)!r} has empty values")
    psi = df["psi"].dropna()
    if len(psi) and (psi.min() < 0 or psi.max() > 100 + 1e-6):
        raise DataError(f"column 'psi' in {str(where)!r} must be a percentage in 0..100; found {psi.min():g}..{psi.max():g}")
    df["method"] = df["method"].astype(str)
    for column in ("attack", "model", "arch"):
        fallback = str(config.get(column) or ("" if column == "arch" else "unknown"))
        df[column] = df[column].fillna(fallback).astype(str) if column in df.columns else str(fallback)
    target = config.get("target")
    if "target" in df.columns:
        df["target"] = df["target"].astype(object).where(df["target"].notna(), target)
    else:
        df["target"] = target
    df["target"] = df["target"].map(lambda t: "" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t))
    if "cell_id" in df.columns:
        df["cell_id"] = df["cell_id"].astype(str)
    return df


def read_groups(directory: Path, cell_groups: list[pd.DataFrame]) -> pd.DataFrame | None:
    """Per-group rows of ``groups.parquet`` (plus those of unmerged cells), or None."""
    frames = []
    path = directory / "groups.parquet"
    if path.is_file():
        frames.append(read_table(path))
    frames.extend(cell_groups)
    if not frames:
        return None
    groups = pd.concat(frames, ignore_index=True)
    missing = [c for c in GROUP_REQUIRED_COLUMNS if c not in groups.columns]
    if missing:
        raise DataError(f"per-group results in {str(directory)!r} lack column(s) {', '.join(missing)}")
    groups = groups.copy()
    _coerce_numeric(groups, "psi", path)
    if "size" not in groups.columns:
        groups["size"] = np.nan
    groups["cell_id"] = groups["cell_id"].astype(str)
    groups["group"] = groups["group"].astype(str)
    return groups.drop_duplicates(subset=["cell_id", "group"], keep="last").reset_index(drop=True)


def _scalar(value: np.ndarray) -> Any:
    return value.item() if value.ndim == 0 else value.tolist()


def _heatmap_file(directory: Path) -> Path | None:
    """``heatmaps.npz``, or else (an unfinished sweep) the one cell archive that holds the matrices."""
    path = directory / "heatmaps.npz"
    if path.is_file():
        return path
    for candidate in sorted((directory / CELLS_DIR).glob("*.npz")):
        try:
            with np.load(candidate, allow_pickle=False) as npz:
                if all(k in npz.files for k in HEATMAP_KEYS):
                    return candidate
        except Exception:  # a cell archive being written or damaged: not the report's concern
            continue
    return None


def read_heatmaps(directory: Path) -> Heatmaps | None:
    """The Fig. 6 matrices (loaded without pickle), or None if the sweep saved none."""
    path = _heatmap_file(directory)
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
    except Exception as err:  # zip, npy header and pickle refusals all land here
        raise CorruptResultsError(f"cannot read {str(path)!r}: {err}") from err
    missing = [k for k in HEATMAP_KEYS if k not in data]
    if missing:
        raise DataError(f"{str(path)!r} lacks array(s) {', '.join(missing)}")
    shapes = {data[k].shape for k in HEATMAP_KEYS}
    first = data["original"]
    if len(shapes) != 1 or first.ndim != 2 or first.shape[0] != first.shape[1]:
        raise DataError(f"{str(path)!r}: original/permuted/perturbed must be square matrices of one shape; got {sorted(shapes)}")
    if not all(np.issubdtype(data[k].dtype, np.number) for k in HEATMAP_KEYS):
        raise DataError(f"{str(path)!r}: the matrices must be numeric")
    meta = {k: _scalar(data[k]) for k in ("group", "level", "attack") if k in data}
    return Heatmaps(
        *(data[k].astype(float) for k in HEATMAP_KEYS),
        group=str(meta.get("group", "")), level=meta.get("level"), attack=str(meta.get("attack", "")),
    )


# --------------------------------------------------------------------------- sweeps


def _expected_cells(config: dict) -> int | None:
    """levels x seeds x methods from the config, when it says."""
    try:
        seeds = config["seeds"]
        n_seeds = len(seeds) if isinstance(seeds, list) else int(seeds)
        return len(config["levels"]) * n_seeds * len(config["methods"])
    except (KeyError, TypeError, ValueError):
        return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._") or "sweep"


def _model_stem(model: str) -> str:
    name = Path(str(model)).name
    return name.split(".")[0] or name


def load_results_dir(directory: Path) -> list[Sweep]:
    """The sweeps in one results directory (usually one; several if rows mix attacks or models)."""
    config = read_config(directory)
    raw, source, cell_groups = read_rows(directory)
    rows = validate_rows(raw, config, directory)
    groups = read_groups(directory, cell_groups)
    heatmaps = read_heatmaps(directory)
    keys = ["attack", "model", "arch", "target"]
    parts = [part.reset_index(drop=True) for _, part in rows.groupby(keys, sort=False, dropna=False)]
    sweeps = []
    for part in parts:
        first = part.iloc[0]
        sweep = Sweep(
            name="", path=directory, config=config, rows=part, attack=first["attack"], model=first["model"],
            arch=first["arch"], target=first["target"] or None, source=source,
            expected_cells=_expected_cells(config) if len(parts) == 1 else None,
        )
        if groups is not None:
            if "cell_id" not in part.columns:
                sweep.notes.append("per-group results ignored: the results rows have no cell_id to join them on")
            else:
                cells = part[["cell_id", "level", "seed", "method"]]
                own = groups.drop(columns=[c for c in ("level", "seed", "method") if c in groups.columns])
                joined = own.merge(cells, on="cell_id", how="inner")
                sweep.groups = joined if len(joined) else None
        sweeps.append(sweep)
    failed = len(list((directory / FAILURES_DIR).glob("*.json")))
    if failed:
        sweeps[0].notes.append(f"{failed} cell(s) failed; see {directory / FAILURES_DIR} (running the sweep again retries them).")
    if heatmaps is not None:
        match = [s for s in sweeps if heatmaps.attack and s.attack == heatmaps.attack]
        (match or sweeps)[0].heatmaps = heatmaps
    return sweeps


def _name_sweeps(sweeps: list[Sweep]) -> None:
    """Unique, file-name-safe names: the attack, plus the model when attacks repeat."""
    attacks = [s.attack for s in sweeps]
    used: set[str] = set()
    for sweep in sweeps:
        base = sweep.attack if attacks.count(sweep.attack) == 1 else f"{sweep.attack}-{_model_stem(sweep.model)}"
        name = candidate = _slug(base)
        k = 2
        while candidate in used:
            candidate = f"{name}-{k}"
            k += 1
        used.add(candidate)
        sweep.name = candidate


def load_sweeps(paths: list[str | Path] | str | Path) -> list[Sweep]:
    """All sweeps under ``paths``, ordered like the paper's tables (noise, fine-tuning, quantization, pruning)."""
    sweeps = [s for directory in find_results_dirs(paths) for s in load_results_dir(directory)]
    sweeps.sort(key=lambda s: (s.style.order, s.attack, s.model, s.target or ""))
    _name_sweeps(sweeps)
    return sweeps
