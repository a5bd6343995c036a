"""Rich progress bars on stderr: shown only on a terminal, never with ``quiet=True``, never on stdout.

Redirected to a file or a pipe, a bar cannot redraw itself: rich would leave its last
frame (and ANSI residue) in the log, so there is no bar at all unless stderr is a
terminal. Status lines (:func:`info`) are plain text and still printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

#: Progress and status messages go to stderr so that ``--json`` output stays clean.
stderr_console = Console(stderr=True, soft_wrap=True, markup=False)


class _NullProgress:
    """Stands in for ``rich.progress.Progress`` when quiet."""

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass

    def advance(self, *args, **kwargs) -> None:
        pass

    def remove_task(self, *args, **kwargs) -> None:
        pass


def bars_shown(quiet: bool = False) -> bool:
    """True when progress bars are drawn: not ``quiet`` and stderr is a terminal."""
    return not quiet and stderr_console.is_terminal


@contextmanager
def progress(quiet: bool = False, transient: bool = False):
    """Context manager yielding a rich ``Progress`` (or a silent stand-in, see :func:`bars_shown`)."""
    if not bars_shown(quiet):
        yield _NullProgress()
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=stderr_console,
        transient=transient,
    )
    with bar:
        yield bar


def track(items: Iterable[T], description: str, total: int | None = None, quiet: bool = False) -> Iterator[T]:
    """Iterate with a progress bar (silent when ``quiet``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress(quiet=quiet, transient=True) as bar:
        task = bar.add_task(description, total=total, status="")
        for item in items:
            yield item
            bar.advance(task)


def info(message: str, quiet: bool = False) -> None:
    """A status line on stderr."""
    if not quiet:
        stderr_console.print(message)
