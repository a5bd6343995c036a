"""Reports of robustness sweeps: paper-style tables, figures and one self-contained HTML page.

``build_report(dirs)`` reads one or several results directories (or a parent of
several), and writes beside them (or into ``out_dir``)::

    table.md              paper-style tables (Tables 1-4) and per-group Ψ
    summary.csv           tidy aggregate: one row per (sweep, level, method), mean/std over seeds
    groups_summary.csv    per-group Ψ, when the sweeps recorded it
    robustness-*.png      Ψ and error against the level (Fig. 4b)
    heatmaps-*.png        cosine-similarity matrices (Fig. 6), when heatmaps.npz exists
    timing-*.png          time per phase and method
    watermark.png         watermark BER against the attacks (Fig. 7), when BER columns exist
    report.html           all of the above in one file that needs nothing else

Every file is written atomically. The building blocks (``html.Section``,
``html.write_html``, ``plots.save_figure``, ``tables.Table``) are meant for other reports.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ConfigError
from ..utils.atomic import atomic_path, atomic_write_text
from ..utils.progress import track
from . import plots
from .html import Bullets, Image, KeyValues, Paragraph, Section, write_html
from .results import Sweep, load_sweeps
from .summary import describe
from .tables import group_summary, group_tables, markdown_report, paper_table, summary_frame

__all__ = ["Report", "build_report", "load_sweeps", "write_report"]

PathLike = str | os.PathLike


@dataclass
class Report:
    """What :func:`write_report` wrote."""

    out_dir: Path
    html: Path
    files: list[Path] = field(default_factory=list)
    sweeps: list[Sweep] = field(default_factory=list)


def _out_dir(paths: Sequence[PathLike], out_dir: PathLike | None) -> Path:
    """``out_dir`` if given, else the single directory the user named."""
    if out_dir is not None:
        out = Path(out_dir)
    elif len(paths) == 1:
        out = Path(paths[0])
    else:
        raise ConfigError("several results directories given: choose where the combined report goes with -o OUT_DIR")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {str(out)!r} is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_csv(frame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def _source_text(sweep: Sweep) -> str:
    count = f"{sweep.n_cells} of {sweep.expected_cells}" if sweep.expected_cells else f"{sweep.n_cells}"
    return (f"Results: {sweep.path} ({sweep.source}; {count} (level, seed, method) results"
            f"{'' if sweep.complete else ', incomplete'}).")


def _figure(fig, path: Path, svg: bool, written: list[Path], alt: str, caption: str) -> Image:
    """Save ``fig`` (recording the files in ``written``) and return it as an embedded image."""
    written += plots.save_figure(fig, path, svg=svg)
    return Image.from_file(path, alt=alt, caption=caption)


def _sweep_section(sweep: Sweep, out: Path, svg: bool, written: list[Path]) -> Section:
    """Config, figures and per-group tables of one sweep (its figures are saved as they are drawn)."""
    style = sweep.style
    parts: list = [Paragraph(_source_text(sweep))]
    parts.append(KeyValues(sweep.config, title="config.json") if sweep.config else Paragraph("No config.json.", "note"))
    parts.append(_figure(
        plots.plot_robustness(sweep), out / f"robustness-{sweep.name}.png", svg, written,
        alt=f"Ψ and error against {style.symbol}",
        caption=f"Ψ (left axis, blue, one line per method) and top-1 error (right axis, red) against "
                f"{style.axis_label}; error bars: std over seeds.",
    ))
    if sweep.heatmaps is not None:
        parts.append(_figure(
            plots.plot_heatmaps(sweep.heatmaps, style), out / f"heatmaps-{sweep.name}.png", svg, written,
            alt="cosine-similarity matrices",
            caption="Cosine similarity between the original neurons (rows) and the suspect's (columns): "
                    "a diagonal means the order is intact; a permuted diagonal is what re-synchronization undoes.",
        ))
    parts.extend(group_tables(sweep))
    fig = plots.plot_timing(sweep)
    if fig is not None:
        parts.append(_figure(fig, out / f"timing-{sweep.name}.png", svg, written, alt="timing per method",
                             caption="Mean seconds per cell and phase (error bars: std over cells)."))
    return Section(sweep.label, parts, anchor=f"sweep-{sweep.name}")


def _summary_section(sweeps: Sequence[Sweep]) -> Section:
    if len(sweeps) == 1:
        return Section("Summary", [Bullets(describe(sweeps[0]))], anchor="summary")
    return Section("Summary", [Section(s.label, [Bullets(describe(s))]) for s in sweeps], anchor="summary")


def write_report(
    results_dirs: PathLike | Sequence[PathLike], out_dir: PathLike | None = None, quiet: bool = False, svg: bool = False
) -> Report:
    """Read the sweeps under ``results_dirs`` and write every report file; see the module docstring."""
    paths = [results_dirs] if isinstance(results_dirs, (str, os.PathLike)) else list(results_dirs)
    sweeps = load_sweeps(paths)
    out = _out_dir(paths, out_dir)
    written: list[Path] = []

    atomic_write_text(out / "table.md", markdown_report(sweeps))
    written.append(out / "table.md")
    written.append(_write_csv(summary_frame(sweeps), out / "summary.csv"))
    group_frames = [g for g in (group_summary(s) for s in sweeps) if g is not None]
    if group_frames:
        written.append(_write_csv(pd.concat(group_frames, ignore_index=True), out / "groups_summary.csv"))

    sections = [_summary_section(sweeps), Section("Robustness tables", [paper_table(s) for s in sweeps], anchor="tables")]
    fig = plots.plot_watermark(sweeps)
    if fig is not None:
        sections.append(Section("Watermark against the attacks", [_figure(
            fig, out / "watermark.png", svg, written, alt="watermark BER against the level",
            caption="Bit error rate of the Uchida et al. watermark after the attack (permuted, grey) and after "
                    "re-synchronization as a counter-attack (blue); 50 % is chance.",
        )], anchor="watermark"))
    for sweep in track(sweeps, "plotting", quiet=quiet):
        sections.append(_sweep_section(sweep, out, svg, written))

    models = list(dict.fromkeys(s.model for s in sweeps))
    title = f"Robustness report — {models[0]}" if len(models) == 1 else "Robustness report"
    subtitle = f"{len(sweeps)} sweep{'s' if len(sweeps) != 1 else ''}: " + ", ".join(s.label for s in sweeps)
    html_path = write_html(out / "report.html", title, sections, subtitle=subtitle)
    written.append(html_path)
    return Report(out_dir=out, html=html_path, files=written, sweeps=sweeps)


def build_report(
    results_dirs: PathLike | Sequence[PathLike], out_dir: PathLike | None = None, quiet: bool = False, svg: bool = False
) -> Path:
    """Write the report of ``results_dirs`` (into the directory given, or ``out_dir``); returns ``report.html``."""
    return write_report(results_dirs, out_dir=out_dir, quiet=quiet, svg=svg).html
