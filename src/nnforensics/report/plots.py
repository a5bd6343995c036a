"""Report figures (matplotlib, no display needed).

Figures are built with ``matplotlib.figure.Figure`` directly, not ``pyplot``: no GUI
backend is touched, no global figure list grows, and plotting is safe in any process.
Text that comes from result files goes through :func:`plain` so a ``$`` in a model
name is printed, not parsed as math.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..utils.atomic import atomic_path
from .attacks import AttackStyle, format_level
from .results import Heatmaps, Sweep
from .tables import aggregate, error_depends_on_method, level_error

PSI_COLOR = "tab:blue"
ERROR_COLOR = "tab:red"
# Ψ lines are shades of blue and errors shades of red (the paper's twin-axis convention);
# methods differ by marker and dash so overlapping lines (all at Ψ = 100) stay visible.
BLUES = ("#1f4e9c", "#3a8fd9", "#0b2f5e", "#6fb7f0", "#2a6cb5")
REDS = ("#c0392b", "#e67e73", "#7b1f17", "#f0a39a", "#a3281c")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
DASHES = ("-", "--", ":", "-.")
DPI = 130
HEATMAP_MAX = 100  # the paper clips Fig. 6 to the first 100 neurons for visibility


def plain(text: object) -> str:
    """User text for matplotlib: ``$`` escaped so it is never parsed as mathtext."""
    return str(text).replace("$", r"\$")


def save_figure(fig: Figure, path: str | os.PathLike, svg: bool = False, dpi: int = DPI) -> list[Path]:
    """Write ``fig`` as PNG at ``path`` (and an SVG beside it if ``svg``), atomically; returns the paths.

    The output is deterministic (no timestamps, fixed SVG ids), so re-running a report on
    the same results reproduces the same files.
    """
    path = Path(path)
    targets = [(path.with_suffix(".png"), "png")] + ([(path.with_suffix(".svg"), "svg")] if svg else [])
    with matplotlib.rc_context({"svg.hashsalt": "nnforensics", "svg.fonttype": "none"}):
        for target, fmt in targets:
            metadata = {"Date": None} if fmt == "svg" else None
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
    return [t for t, _ in targets]


# --------------------------------------------------------------------------- level axes


@dataclass(frozen=True)
class LevelAxis:
    """The x axis of an attack's levels: scale chosen once from all of the sweep's levels."""

    style: AttackStyle
    levels: tuple[float, ...]
    scale: str  # "linear", "log2" or "log-remaining"

    @classmethod
    def of(cls, sweep: Sweep) -> "LevelAxis":
        style, levels = sweep.style, np.asarray(sweep.levels, dtype=float)
        scale = "linear"
        if style.scale == "log2" and (levels > 0).all():
            scale = "log2"
        elif style.scale == "log-remaining" and ((levels >= 0) & (levels < 1)).all():
            scale = "log-remaining"  # pruning 0.90..0.99: spread the fractions near 1
        return cls(style, tuple(levels.tolist()), scale)

    def x(self, levels) -> np.ndarray:
        """Plot coordinates of ``levels``."""
        levels = np.asarray(levels, dtype=float)
        return 1.0 - levels if self.scale == "log-remaining" else levels

    def setup(self, ax: Axes) -> None:
        """Scale, direction (weak → strong, left → right) and ticks at the swept levels."""
        if self.scale == "log2":
            ax.set_xscale("log", base=2)
        elif self.scale == "log-remaining":
            ax.set_xscale("log")
        # Stronger attacks to the right: fewer bits, or less weight remaining.
        if not self.style.stronger_when_higher or self.scale == "log-remaining":
            ax.invert_xaxis()
        if len(self.levels) <= 12:
            ax.set_xticks(self.x(self.levels), [format_level(lv) for lv in self.levels])
            ax.minorticks_off()
        ax.set_xlabel(plain(self.style.axis_label))


# --------------------------------------------------------------------------- (a) Ψ and error vs level


def plot_robustness(sweep: Sweep) -> Figure:
    """Ψ (left axis, blue) and error (right axis, red) against the level, error bars over seeds (Fig. 4b)."""
    agg = aggregate(sweep)
    axis = LevelAxis.of(sweep)
    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax_err = ax.twinx()
    handles = []
    for i, method in enumerate(sweep.methods):
        part = agg[agg["method"] == method]
        handles.append(ax.errorbar(
            axis.x(part["level"]), part["psi_mean"], yerr=part["psi_std"].fillna(0), color=BLUES[i % len(BLUES)],
            marker=MARKERS[i % len(MARKERS)], markersize=max(9 - 1.5 * i, 4), fillstyle="none",
            linestyle=DASHES[i % len(DASHES)], capsize=3, label=plain(f"Ψ {method}"),
        ))
    if error_depends_on_method(sweep):
        for i, method in enumerate(sweep.methods):
            part = agg[agg["method"] == method]
            handles.append(ax_err.errorbar(
                axis.x(part["level"]), part["error_mean"], yerr=part["error_std"].fillna(0), color=REDS[i % len(REDS)],
                marker=MARKERS[i % len(MARKERS)], linestyle=DASHES[i % len(DASHES)], capsize=3,
                label=plain(f"err {method}"),
            ))
    else:
        err = level_error(sweep)
        handles.append(ax_err.errorbar(
            axis.x(err["level"]), err["error_mean"], yerr=err["error_std"].fillna(0), color=ERROR_COLOR, marker="o",
            markersize=4, capsize=3, linewidth=1.5, label="err %",
        ))
    axis.setup(ax)
    ax.set_ylim(-3, 103)
    ax.set_ylabel("Ψ (%)  ↑", color=PSI_COLOR)
    ax.tick_params(axis="y", colors=PSI_COLOR)
    ax.grid(True, alpha=0.3)
    top = np.nanmax(agg["error_mean"] + agg["error_std"].fillna(0)) if len(agg) else 1.0
    ax_err.set_ylim(0, min(100.0, max(1.0, float(top) * 1.1)) if math.isfinite(top) else 100.0)
    ax_err.set_ylabel("err (%)  ↓", color=ERROR_COLOR)
    ax_err.tick_params(axis="y", colors=ERROR_COLOR)
    ax.set_title(plain(sweep.label), fontsize=11)
    # Below the axes: inside, it would hide the curves it explains.
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    return fig


# --------------------------------------------------------------------------- (b) Fig. 6 heatmaps


def plot_heatmaps(heatmaps: Heatmaps, style: AttackStyle | None = None, max_size: int = HEATMAP_MAX) -> Figure:
    """Original vs original / permuted / permuted + perturbed cosine matrices, one shared colour bar (Fig. 6)."""
    n = heatmaps.original.shape[0]
    k = min(n, max_size)
    level = ""
    if heatmaps.level is not None:
        level = f", {style.level_text(heatmaps.level)}" if style else f", level {format_level(heatmaps.level)}"
    panels = [
        (heatmaps.original, "(a) original vs original"),
        (heatmaps.permuted, "(b) original vs permuted"),
        (heatmaps.perturbed, f"(c) original vs permuted + perturbed{level}"),
    ]
    fig = Figure(figsize=(13, 4.6), layout="constrained")
    axes = fig.subplots(1, 3)
    image = None
    for ax, (matrix, title) in zip(axes, panels):
        image = ax.imshow(matrix[:k, :k], cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(plain(title), fontsize=10)
        ax.set_xlabel("suspect neuron")
        ax.set_ylabel("original neuron")
    fig.colorbar(image, ax=list(axes), shrink=0.85, label="cosine similarity")
    clipped = f" (first {k} of {n} neurons)" if k < n else f" ({n} neurons)"
    fig.suptitle(plain(f"Cosine similarity of group {heatmaps.group or '?'}{clipped}"), fontsize=11)
    return fig


# --------------------------------------------------------------------------- (c) timing

TIMING_PHASES = (("t_permute_s", "permute"), ("t_perturb_s", "perturb"), ("t_resync_s", "re-sync"), ("t_total_s", "total"))


def plot_timing(sweep: Sweep) -> Figure | None:
    """Mean time per phase for each method (log scale: phases differ by orders of magnitude); None without timings."""
    phases = [(col, name) for col, name in TIMING_PHASES if col in sweep.rows.columns and sweep.rows[col].notna().any()]
    if not phases:
        return None
    methods = sweep.methods
    grouped = sweep.rows.groupby("method")
    fig = Figure(figsize=(max(5.5, 1.6 * len(methods) + 2.5), 4.0), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(phases)
    positive = []
    for j, (col, name) in enumerate(phases):
        mean = grouped[col].mean().reindex(methods)
        std = grouped[col].std().reindex(methods).fillna(0)
        x = np.arange(len(methods)) + (j - (len(phases) - 1) / 2) * width
        ax.bar(x, mean, width, yerr=std, capsize=2, label=name, color=matplotlib.colormaps["tab10"](j))
        positive += [v for v in mean if v > 0]
    ax.set_xticks(np.arange(len(methods)), [plain(m) for m in methods])
    if positive and max(positive) / min(positive) > 50:
        ax.set_yscale("log")
    ax.set_ylabel("seconds per cell (mean ± std)")
    ax.set_title(plain(f"Timing: {sweep.label}"), fontsize=11)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


# --------------------------------------------------------------------------- (d) Fig. 7 watermark

def plot_watermark(sweeps: Sequence[Sweep]) -> Figure | None:
    """Watermark BER against the level, one panel per attack: after permutation vs re-synchronized (Fig. 7)."""
    marked = [s for s in sweeps if s.has_watermark]
    if not marked:
        return None
    cols = 1 if len(marked) == 1 else 2
    rows = math.ceil(len(marked) / cols)
    fig = Figure(figsize=(max(8.0, 6.0 * cols), 3.6 * rows + 1.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    for ax, sweep in zip(axes, marked):
        style, axis = sweep.style, LevelAxis.of(sweep)
        agg = aggregate(sweep)
        # The raw BER (after permutation, before re-synchronization) does not depend on the method.
        raw = sweep.rows.groupby(["level", "seed"])["ber_raw"].mean().groupby(level="level").agg(["mean", "std"])
        raw = raw.reindex(sweep.levels)
        if "ber_attack" in sweep.rows.columns:  # the attack alone, no permutation
            alone = sweep.rows.groupby(["level", "seed"])["ber_attack"].mean().groupby(level="level").agg(["mean", "std"])
            alone = alone.reindex(sweep.levels)
            ax.errorbar(axis.x(alone.index), alone["mean"], yerr=alone["std"].fillna(0), color="tab:green", marker="s",
                        fillstyle="none", linestyle="-", capsize=3, label="attack only (no permutation)")
        ax.errorbar(axis.x(raw.index), raw["mean"], yerr=raw["std"].fillna(0), color="0.35", marker="x", linestyle="--",
                    capsize=3, label="permuted + attack")
        for i, method in enumerate(sweep.methods):
            part = agg[agg["method"] == method]
            ax.errorbar(axis.x(part["level"]), part["ber_resync_mean"], yerr=part["ber_resync_std"].fillna(0),
                        color=BLUES[i % len(BLUES)],
                        marker=MARKERS[i % len(MARKERS)], fillstyle="none", linestyle=DASHES[i % len(DASHES)],
                        capsize=3, label=plain(f"re-synchronized, {method} (CA)"))
        ax.axhline(50, color="0.6", linewidth=0.8, linestyle=":")
        axis.setup(ax)
        ax.set_ylim(-3, 103)
        ax.set_title(plain(style.title if len({s.attack for s in marked}) == len(marked) else sweep.label), fontsize=10)
        ax.grid(True, alpha=0.3)
    # One legend for all panels (the same curves in each), keyed by label.
    labelled: dict[str, object] = {}
    for ax in axes[: len(marked)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labelled.setdefault(label, handle)
    fig.legend(list(labelled.values()), list(labelled.keys()), loc="outside lower center",
               ncol=min(len(labelled), 2 if cols == 1 else 4), fontsize=8, frameon=False)
    for ax in axes[: len(marked): cols]:
        ax.set_ylabel("watermark BER (%)  ↓")
    for ax in axes[len(marked):]:
        ax.set_visible(False)
    fig.suptitle("Watermark (Uchida et al.): attack alone, permuted + attack, re-synchronized (CA)", fontsize=11)
    return fig
