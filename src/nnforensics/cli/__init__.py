"""The ``nnf`` command line: thin wrappers over the Python API.

Every command reports user errors as one line on stderr and exits non-zero; ``--debug``
(accepted anywhere on the line) shows the traceback.

Exit codes: 0 success, 1 bad input (:class:`~nnforensics.errors.NNFError`, file system
errors), 2 bad command line, 3 internal error (a bug), 130 interrupted.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from ..errors import NNFError

app = typer.Typer(
    name="nnf",
    help="nnforensics: white-box forensics of neural networks "
    "(permutation, re-synchronization, integrity, watermarks). "
    "Every command takes --help, --json, --quiet and --debug.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

from . import model_cmds  # noqa: E402,F401  (registers commands)
from . import demo_cmd  # noqa: E402,F401
from . import report_cmds  # noqa: E402,F401
from . import perturb_cmds  # noqa: E402,F401
from . import robustness_cmds  # noqa: E402,F401
from . import core_cmds  # noqa: E402,F401
from . import watermark_cmds  # noqa: E402,F401

# typer >= 0.20 vendors click (typer._click); older versions raise click's own exceptions.
_USAGE_ERRORS: tuple[type[Exception], ...] = (typer.TyperException,)
try:
    import click

    _USAGE_ERRORS += (click.ClickException,)
except ImportError:  # pragma: no cover
    pass

EXIT_INTERRUPTED = 130


def _err(message: str) -> None:
    """Print ``error: <first non-empty line of message>`` on stderr."""
    lines = [line for line in str(message).splitlines() if line.strip()]
    typer.echo(f"error: {lines[0] if lines else 'unknown error'}", err=True)


def _usage_message(err: Exception) -> str:
    """One line for a command-line mistake, pointing at the command's --help."""
    text = err.format_message() if hasattr(err, "format_message") else str(err)
    text = " ".join(text.split())
    ctx = getattr(err, "ctx", None)
    command = getattr(ctx, "command_path", None) or "nnf"
    return f"{text} (see '{command} --help')"


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so atomic writes clean up their temporary files."""
    def handler(signum, frame):  # noqa: ANN001
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _user_modules_importable() -> None:
    """Let ``--arch package.module:factory`` find modules in the current folder.

    ``python -m nnforensics`` puts the current folder on ``sys.path``; the ``nnf``
    script does not. Appended, so it never shadows an installed package.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nnf`` / ``python -m nnforensics``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]  # global: works with every command
    command = typer.main.get_command(app)
    _user_modules_importable()

    def report(message: str) -> None:
        if debug:
            traceback.print_exc()
        _err(message)

    try:
        with _sigterm_as_interrupt():
            code = command.main(args=args, prog_name="nnf", standalone_mode=False)
    except typer.Exit as done:  # --help, typer.Exit(code)
        code = done.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
    except _USAGE_ERRORS as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # bare `nnf`: the help, not an error
            text = err.format_message()  # (rich help is printed already and leaves this empty)
            if text.strip():
                typer.echo(text)
            return 0
        report(_usage_message(err))
        return int(getattr(err, "exit_code", 2) or 2)
    except NNFError as err:
        report(str(err))
        return err.exit_code
    except MemoryError:
        report("out of memory; try a smaller --batch-size or a narrower model")
        return 1
    except OSError as err:  # disk full, permissions, missing folders: the environment, not a bug
        where = f": {err.filename!r}" if err.filename else ""
        report(f"{err.strerror or err}{where}")
        return 1
    except Exception as err:  # a bug: say so plainly, traceback with --debug
        report(f"internal error: {type(err).__name__}: {err} (run with --debug for the traceback)")
        return 3
    # Non-standalone typer returns the command's return value, or an exit code for
    # typer.Exit / Ctrl-C (which it turns into Exit(130)).
    code = code if isinstance(code, int) else 0
    if code == EXIT_INTERRUPTED:
        _err("interrupted")
    return code


def run() -> None:
    sys.exit(main())
