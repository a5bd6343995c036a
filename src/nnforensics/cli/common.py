"""Options and output helpers shared by every command."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..utils.device import DEVICE_CHOICES

console = Console()  # results (stdout)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or status lines.")]
DeviceOpt = Annotated[str, typer.Option("--device", help=f"One of {', '.join(DEVICE_CHOICES)}.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
ArchOpt = Annotated[
    Optional[str],
    typer.Option("--arch", help="Architecture name (nnf models), or path/to/file.py:Class, or package.module:factory."),
]
ArchArgOpt = Annotated[
    Optional[list[str]], typer.Option("--arch-arg", help="Constructor argument KEY=VALUE (repeatable).")
]
DataOpt = Annotated[str, typer.Option("--data", help="Dataset NAME or NAME:PATH (see nnf datasets).")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output file.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN/Inf become null, tuples lists, paths strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return _clean(value.item())
    return value


def print_json(payload: Any) -> None:
    typer.echo(json.dumps(_clean(payload), indent=None, sort_keys=False))


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    out = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        out.add_column(col)
    for row in rows:
        out.add_row(*[fmt(v) for v in row])
    return out


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(fmt(v) for v in value) + ")"
    return "" if value is None else str(value)
