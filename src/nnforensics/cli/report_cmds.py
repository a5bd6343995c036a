"""nnf report: tables, figures and an HTML page from robustness sweep results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ConfigError
from . import app
from .common import DebugOpt, JsonOpt, QuietOpt, print_json


def _kind(results_dir: Path) -> str | None:
    """The ``kind`` a results directory's config.json records (None if it has none)."""
    from ..experiments.sweep import ResultsDir

    if not (results_dir / "config.json").is_file():
        return None
    return (ResultsDir(results_dir).read_config() or {}).get("kind")


@app.command("report")
def report_cmd(
    results_dirs: Annotated[
        list[Path],
        typer.Argument(help="Results directories of sweeps, or a parent directory holding several.",
                       metavar="RESULTS_DIR", show_default=False),
    ],
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="Folder for the report (default: the one directory given)."),
    ] = None,
    svg: Annotated[bool, typer.Option("--svg", help="Also save the figures as SVG.")] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write table.md, summary.csv, figures and a self-contained report.html for sweep results."""
    from ..report import write_report

    if len(results_dirs) == 1 and _kind(results_dirs[0]) == "fragility":
        from ..report.fragility import write_fragility_report

        if out is not None:
            raise ConfigError("a fragility report is written into its results directory; drop --out")
        page = write_fragility_report(results_dirs[0])
        if json_out:
            print_json({"report": page, "out_dir": page.parent})
        elif not quiet:
            typer.echo(f"wrote {page}")
        return

    report = write_report(results_dirs, out_dir=out, quiet=quiet or json_out, svg=svg)
    if json_out:
        print_json({
            "report": report.html,
            "out_dir": report.out_dir,
            "files": report.files,
            "sweeps": [
                {"name": s.name, "attack": s.attack, "model": s.model, "path": s.path,
                 "cells": s.n_cells, "expected_cells": s.expected_cells, "complete": s.complete}
                for s in report.sweeps
            ],
        })
    elif not quiet:
        # Plain echo: paths may contain [brackets] that rich would read as markup.
        typer.echo(f"wrote {report.html} ({len(report.sweeps)} sweep(s), {len(report.files)} files in {report.out_dir})")
