"""Options and output helpers shared by every command."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console, ConsoleDimensions
from rich.table import Table

from ..utils.device import DEVICE_CHOICES

#: Width of output that does not go to a terminal: wide enough that no table is ever cut or wrapped.
PIPE_WIDTH = 10_000


class ResultConsole(Console):
    """Results on stdout: the terminal's width on a terminal, otherwise unbounded.

    Piped to a file, rich would lay tables out for 80 columns (or the width of the
    terminal the pipe runs in) and cut cells ("features.…"); a file gets every table at
    its natural width instead.
    """

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.is_terminal else ConsoleDimensions(PIPE_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


# soft_wrap: long lines (paths) are never broken; markup off: a user's path or name is
# printed as given, never parsed as [style] tags.
console = ResultConsole(soft_wrap=True, markup=False)

#: The one --device default of every command.
DEVICE_DEFAULT = "auto"

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
InputShapeOpt = Annotated[Optional[str], typer.Option(
    "--input-shape", metavar="C,H,W",
    help="One input's shape without the batch axis, e.g. 3,32,32 for images or 20 for vectors, for a model "
         "whose file does not record it (a .pt state dict, your own --arch); recorded in the files written.")]
ExampleInputsOpt = Annotated[Optional[Path], typer.Option(
    "--example-inputs", metavar="FILE",
    help="A .safetensors or .npz file of named tensors (batch axis first) to feed the model instead of random "
         "inputs: one tensor is passed positionally, several by name (e.g. input_ids and attention_mask).")]


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
    """A results table; on a narrow terminal long cells wrap (``fold``) instead of being cut."""
    out = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        out.add_column(col, overflow="fold")
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
