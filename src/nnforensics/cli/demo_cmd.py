"""nnf demo: the main job on real data that ships with a package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import app
from .common import DebugOpt, DeviceOpt, QuietOpt


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo's models and report.")] = Path("nnf-demo"),
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train LeNet on real MNIST (cached in OUT) and report its test accuracy."""
    from ..demo import run_demo

    run_demo(out, device=device, quiet=quiet)
