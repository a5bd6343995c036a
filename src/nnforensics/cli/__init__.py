"""The ``nnf`` command line: thin wrappers over the Python API.

Every command reports user errors as one line ``error: ...`` on stderr and exits
non-zero; ``--debug`` (accepted anywhere on the line) shows the traceback. With
``--json``, an error is *also* printed on stdout as one line of JSON,
``{"error": "...", "exit_code": N}``, so a program reading stdout always gets JSON
(the stderr line stays for the human watching).

Exit codes: 0 success, 1 bad input (:class:`~nnforensics.errors.NNFError`, file system
errors), 2 bad command line, 3 internal error (a bug), 130 interrupted.

Warnings raised by nnforensics itself (e.g. a ``DataWarning``) are one line
``warning: ...`` on stderr; other libraries' warnings are not shown (``--debug`` shows
them). Help texts name value kinds (TEXT, INTEGER, PATH...), never Python types.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from .. import __version__
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


def _print_version(value: bool) -> None:
    """``nnf --version``: print it before any command runs."""
    if value:
        typer.echo(f"nnf (nnforensics) {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print the version and exit.")] = False,
) -> None:
    """nnforensics: white-box forensics of neural networks (global options only; see the commands)."""


from . import model_cmds  # noqa: E402,F401  (registers commands)
from . import demo_cmd  # noqa: E402,F401
from . import report_cmds  # noqa: E402,F401
from . import perturb_cmds  # noqa: E402,F401
from . import robustness_cmds  # noqa: E402,F401
from . import core_cmds  # noqa: E402,F401
from . import watermark_cmds  # noqa: E402,F401
from . import fragility_cmds  # noqa: E402,F401

# typer >= 0.20 vendors click (typer._click); older versions raise click's own exceptions.
_USAGE_ERRORS: tuple[type[Exception], ...] = (typer.TyperException,)
try:
    import click

    _USAGE_ERRORS += (click.ClickException,)
except ImportError:  # pragma: no cover
    pass

EXIT_INTERRUPTED = 130


def _first_line(message: str) -> str:
    lines = [line for line in str(message).splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


def _err(message: str, code: int = 1, as_json: bool = False) -> None:
    """Print ``error: <first non-empty line of message>`` on stderr (and, ``as_json``, the
    same as ``{"error", "exit_code"}`` on stdout)."""
    line = _first_line(message)
    if as_json:
        typer.echo(json.dumps({"error": line, "exit_code": code}))
    typer.echo(f"error: {line}", err=True)


# ---------------------------------------------------------------- warnings and help texts

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


@contextmanager
def _clean_warnings(debug: bool) -> Iterator[None]:
    """Our own warnings as one line ``warning: ...`` on stderr; other libraries' hidden unless ``debug``."""
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        ours = category.__module__.startswith("nnforensics") or str(filename).startswith(_PACKAGE_DIR)
        if ours:
            typer.echo(f"warning: {_first_line(str(message))}", err=True)
        elif debug:
            original(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        original = warnings.showwarning
        warnings.simplefilter("default")  # each distinct warning once
        warnings.showwarning = show
        yield


def _type_label(param: Any) -> str | None:
    """What a parameter's help shows for its value: INTEGER, NUMBER, PATH or TEXT (None for flags)."""
    if getattr(param, "is_flag", False):
        return None
    desc = param.type_descriptor
    kind = desc.annotation
    if desc.is_list:
        kind = (get_args(kind) or (str,))[0]
    if desc.is_path or kind is Path:
        return "PATH"
    return {int: "INTEGER", float: "NUMBER", bool: "BOOLEAN"}.get(kind, "TEXT")


def _plain_help(command: Any) -> None:
    """Help texts with value kinds instead of typer's Python types (``<list[str]>``), recursively."""
    for param in getattr(command, "params", []):
        if not hasattr(param, "type_descriptor"):
            continue
        if hasattr(param, "is_flag") and param.metavar is not None:
            continue  # an option's own metavar (C,H,W; FILE) is shown as given
        param.display_type_rich = lambda ctx, _label=_type_label(param): _label
    make_help_option = command.get_help_option  # click adds --help per invocation

    def help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None:
            option.display_type_rich = lambda ctx: None
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


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
    as_json = "--json" in args
    command = typer.main.get_command(app)
    _plain_help(command)
    _user_modules_importable()

    def report(message: str, code: int) -> int:
        if debug:
            traceback.print_exc()
        _err(message, code, as_json)
        return code

    try:
        with _sigterm_as_interrupt(), _clean_warnings(debug):
            code = command.main(args=args, prog_name="nnf", standalone_mode=False)
    except typer.Exit as done:  # --help, --version, typer.Exit(code)
        code = done.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
    except _USAGE_ERRORS as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # bare `nnf`: the help, not an error
            text = err.format_message()  # (rich help is printed already and leaves this empty)
            if text.strip():
                typer.echo(text)
            return 0
        return report(_usage_message(err), int(getattr(err, "exit_code", 2) or 2))
    except NNFError as err:
        return report(str(err), err.exit_code)
    except MemoryError:
        return report("out of memory; try a smaller --batch-size or a narrower model", 1)
    except OSError as err:  # disk full, permissions, missing folders: the environment, not a bug
        where = f": {err.filename!r}" if err.filename else ""
        return report(f"{err.strerror or err}{where}", 1)
    except Exception as err:  # a bug: say so plainly, traceback with --debug
        return report(f"internal error: {type(err).__name__}: {err} (run with --debug for the traceback)", 3)
    # Non-standalone typer returns the command's return value, or an exit code for
    # typer.Exit / Ctrl-C (which it turns into Exit(130)).
    code = code if isinstance(code, int) else 0
    if code == EXIT_INTERRUPTED:
        _err("interrupted", code, as_json)
    return code


def run() -> None:
    sys.exit(main())
