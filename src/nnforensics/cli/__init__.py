"""The ``nnf`` command line: thin wrappers over the Python API.

Every command reports user errors as one line on stderr and exits non-zero; ``--debug``
shows the traceback.
"""

from __future__ import annotations

import sys
import traceback

import click
import typer

from ..errors import NNFError

app = typer.Typer(
    name="nnf",
    help="nnforensics: white-box forensics of neural networks "
    "(permutation, re-synchronization, integrity, watermarks).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

from . import model_cmds  # noqa: E402,F401  (registers commands)
from . import demo_cmd  # noqa: E402,F401


def _err(message: str) -> None:
    first = " ".join(str(message).split("\n")[0:1]) if "\n" in str(message) else str(message)
    click.echo(f"error: {first}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nnf`` / ``python -m nnforensics``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="nnf", standalone_mode=False)
    except click.exceptions.Exit as done:
        return int(done.exit_code or 0)
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("error: interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    except NNFError as err:
        if debug:
            traceback.print_exc()
        _err(str(err))
        return err.exit_code
    except MemoryError:
        if debug:
            traceback.print_exc()
        _err("out of memory; try a smaller --batch-size or a narrower model")
        return 1
    except Exception as err:  # a bug: say so plainly, traceback with --debug
        if debug:
            traceback.print_exc()
        _err(f"internal error: {type(err).__name__}: {err} (run with --debug for the traceback)")
        return 3
    return 0


def run() -> None:
    sys.exit(main())
