"""Aggregated tables: the tidy summary (CSV) and paper-style tables (Markdown/HTML).

Every table is first a :class:`Table` of plain strings; ``to_markdown`` and
``html.table_html`` render the same object, so both outputs always agree.
Standard deviations are sample standard deviations (ddof=1) over seeds, as pandas
computes them; a cell with one seed shows its mean only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from .attacks import format_level
from .results import Sweep

#: Spread of the error within one (level, seed) above which it is shown per method.
ERROR_TOLERANCE = 1e-9


@dataclass
class Table:
    """A titled grid of already formatted cells."""

    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    title: str = ""
    note: str = ""

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown; cell text is escaped so it cannot break the table or inject HTML."""
        lines = [f"**{md_escape(self.title)}**", ""] if self.title else []
        lines.append("| " + " | ".join(md_escape(c) for c in self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines.extend("| " + " | ".join(md_escape(c) for c in row) + " |" for row in self.rows)
        if self.note:
            lines += ["", md_escape(self.note)]
        return "\n".join(lines) + "\n"


def md_escape(text: object) -> str:
    """Text safe inside a Markdown table cell (no pipes, line breaks, raw HTML or $math$)."""
    out = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(out.replace("|", "\\|").replace("$", "\\$").split())


# --------------------------------------------------------------------------- formatting


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def fmt_num(value, digits: int = 2) -> str:
    """``100`` and ``0`` for whole numbers, otherwise ``digits`` decimals (``9.96``, ``1.00``), as in the paper."""
    if not _finite(value):
        return "–"
    if abs(value - round(value)) <= 1e-9 * max(1.0, abs(value)):
        return f"{round(value):d}"
    return f"{value:.{digits}f}"


def fmt_pm(mean, std, digits: int = 2) -> str:
    """``"93.50 ± 0.98"``; the mean alone when there is no spread estimate (one seed)."""
    if not _finite(mean):
        return "–"
    return f"{fmt_num(mean, digits)} ± {fmt_num(std, digits)}" if _finite(std) else fmt_num(mean, digits)


# --------------------------------------------------------------------------- aggregation


def _order(sweep: Sweep, frame: pd.DataFrame, group_order: dict | None = None) -> pd.DataFrame:
    """Rows sorted by attack strength, then by the sweep's method order (then by group)."""
    keys = pd.DataFrame({"level": frame["level"].map({lv: i for i, lv in enumerate(sweep.levels)})}, index=frame.index)
    if "method" in frame.columns:
        keys["method"] = frame["method"].map({m: i for i, m in enumerate(sweep.methods)})
    if group_order is not None:
        keys["group"] = frame["group"].map(group_order)
    index = keys.sort_values(list(keys.columns), kind="stable").index
    return frame.loc[index].reset_index(drop=True)


def aggregate(sweep: Sweep) -> pd.DataFrame:
    """Tidy summary: one row per (level, method), ``<metric>_mean`` and ``<metric>_std`` over seeds."""
    metrics = sweep.metric_columns()
    grouped = sweep.rows.groupby(["level", "method"], sort=False)
    stats = grouped[metrics].agg(["mean", "std"])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    stats.insert(0, "n_seeds", grouped["seed"].nunique())
    out = stats.reset_index()
    ids = {"sweep": sweep.name, "attack": sweep.attack, "model": sweep.model, "arch": sweep.arch, "target": sweep.target or ""}
    for i, (key, value) in enumerate(ids.items()):
        out.insert(i, key, value)
    return _order(sweep, out)


def error_depends_on_method(sweep: Sweep) -> bool:
    """True if methods report different errors for the same perturbed model (they should not)."""
    error = sweep.rows.groupby(["level", "seed"])["error"]
    spread = error.max() - error.min()
    return bool((spread.fillna(0) > ERROR_TOLERANCE).any())


def level_error(sweep: Sweep) -> pd.DataFrame:
    """Error per level, mean and std over seeds (each seed counted once, whatever the methods)."""
    per_seed = sweep.rows.groupby(["level", "seed"])["error"].mean()
    out = per_seed.groupby(level="level").agg(["mean", "std", "count"])
    out.columns = ["error_mean", "error_std", "n_seeds"]
    return _order(sweep, out.reset_index())


def summary_frame(sweeps: Sequence[Sweep]) -> pd.DataFrame:
    """The tidy summaries of all sweeps in one frame (written as ``summary.csv``)."""
    return pd.concat([aggregate(s) for s in sweeps], ignore_index=True)


def group_summary(sweep: Sweep) -> pd.DataFrame | None:
    """Per-group Ψ: one row per (level, method, group) with mean and std over seeds."""
    if sweep.groups is None:
        return None
    groups = sweep.groups
    order = {g: i for i, g in enumerate(dict.fromkeys(groups["group"]))}  # the engine's (topological) order
    grouped = groups.groupby(["level", "method", "group"], sort=False)
    out = grouped["psi"].agg(psi_mean="mean", psi_std="std").reset_index()
    out.insert(3, "size", grouped["size"].first().to_numpy())
    out.insert(4, "n_seeds", grouped["seed"].nunique().to_numpy())
    out.insert(0, "sweep", sweep.name)
    return _order(sweep, out, group_order=order)


# --------------------------------------------------------------------------- paper-style tables


def _seeds_text(counts: pd.Series) -> str:
    lo, hi = int(counts.min()), int(counts.max())
    return f"{hi} seed{'s' if hi != 1 else ''}" if lo == hi else f"{lo}–{hi} seeds (incomplete sweep)"


def paper_table(sweep: Sweep, agg: pd.DataFrame | None = None) -> Table:
    """Rows = levels, columns = methods (Ψ mean ± std), plus the error once per level (paper Tables 1–4)."""
    agg = aggregate(sweep) if agg is None else agg
    style, methods = sweep.style, sweep.methods
    per_method_error = error_depends_on_method(sweep)
    cells = {(r.level, r.method): r for r in agg.itertuples(index=False)}
    errors = {r.level: r for r in level_error(sweep).itertuples(index=False)}
    columns = [style.symbol] + [f"Ψ (↑) {m}" for m in methods]
    columns += [f"err % (↓) {m}" for m in methods] if per_method_error else ["err % (↓)"]
    rows = []
    def cell(level, method: str, metric: str) -> str:
        found = cells.get((level, method))
        return fmt_pm(getattr(found, f"{metric}_mean"), getattr(found, f"{metric}_std")) if found else "–"

    for level in sweep.levels:
        row = [format_level(level)] + [cell(level, m, "psi") for m in methods]
        if per_method_error:
            row += [cell(level, m, "error") for m in methods]
        else:
            row.append(fmt_pm(errors[level].error_mean, errors[level].error_std))
        rows.append(row)
    note = (
        f"Ψ: % of neurons put back at their original position; err: top-1 error (%) of the perturbed model. "
        f"Mean ± sample std over {_seeds_text(agg['n_seeds'])}."
    )
    if "base_error" in sweep.rows.columns and sweep.rows["base_error"].notna().any():
        note += f" Unperturbed error: {fmt_num(float(sweep.rows['base_error'].mean()))} %."
    if per_method_error:
        note += " The error differs between methods for the same perturbed model, so it is shown per method."
    return Table(columns, rows, title=f"Robustness to {sweep.style.title} — {sweep.model}", note=note)


def group_tables(sweep: Sweep, summary: pd.DataFrame | None = None) -> list[Table]:
    """Per method: rows = groups (with their size), columns = levels, cells = mean Ψ over seeds."""
    summary = group_summary(sweep) if summary is None else summary
    if summary is None or summary.empty:
        return []
    style = sweep.style
    tables = []
    for method in sweep.methods:
        part = summary[summary["method"] == method]
        if part.empty:
            continue
        psi = {(r.group, r.level): r.psi_mean for r in part.itertuples(index=False)}
        sizes = dict(zip(part["group"], part["size"]))
        levels = [lv for lv in sweep.levels if lv in set(part["level"])]
        rows = [
            [group, fmt_num(sizes[group], 0)] + [fmt_num(psi.get((group, lv))) for lv in levels]
            for group in dict.fromkeys(part["group"])
        ]
        tables.append(
            Table(
                ["group", "size"] + [style.level_text(lv) for lv in levels], rows,
                title=f"Per-group Ψ — {method}", note="Mean Ψ over seeds for each permutation group.",
            )
        )
    return tables


def markdown_report(sweeps: Sequence[Sweep]) -> str:
    """``table.md``: the paper-style table and the per-group tables of every sweep."""
    parts = ["# Robustness tables", ""]
    for sweep in sweeps:
        parts += [f"## {md_escape(sweep.label)}", "", f"Results: {md_escape(sweep.path)} ({md_escape(sweep.source)})", ""]
        parts.append(paper_table(sweep).to_markdown())
        for table in group_tables(sweep):
            parts.append(table.to_markdown())
    return "\n".join(parts)
