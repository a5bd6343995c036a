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

# Results on stdout. soft_wrap: long lines (paths) are not broken at 80 columns when piped;
# markup off: a user's path or name is printed as given, never parsed as [style] tags.
console = Console(soft_wrap=True, markup=False)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one line of JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or status lines (results and errors only).")]
DeviceOpt = Annotated[str, typer.Option("--device", help=f"One of {', '.join(DEVICE_CHOICES)} (or cuda:N).")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
ARCH_HELP = ("Architecture: a name from `nnf models`, or your own as path/to/file.py:ClassName "
             "or package.module:factory (imported from what you name here, never from a model file).")
ArchOpt = Annotated[Optional[str], typer.Option("--arch", help=ARCH_HELP + " Overrides the file's metadata.")]
RequiredArchOpt = Annotated[str, typer.Option("--arch", help=ARCH_HELP)]
ArchArgOpt = Annotated[
    Optional[list[str]],
    typer.Option("--arch-arg", help="Constructor argument KEY=VALUE, e.g. width=0.5 (repeatable; values parsed as JSON)."),
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
    if isinstance(value, (set, frozenset)):
        return [_clean(v) for v in sorted(value, key=str)]
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy / torch scalars and arrays
        return _clean(value.tolist())
    return value


def print_json(payload: Any) -> None:
    """One line of strict JSON (NaN/Inf as null) on stdout."""
    typer.echo(json.dumps(_clean(payload), indent=None, sort_keys=False, allow_nan=False))


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
