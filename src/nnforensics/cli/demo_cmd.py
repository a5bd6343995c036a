"""nnf demo: the main job on real data that ships with a package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import app
from .common import DEVICE_DEFAULT, DebugOpt, DeviceOpt, JsonOpt, QuietOpt, console, print_json


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo's models and report.")] = Path("nnf-demo"),
    device: DeviceOpt = DEVICE_DEFAULT,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The forensics story on real MNIST: train, permute + perturb, re-synchronize, watermark, sweep, report."""
    from ..demo import run_demo

    say = (lambda _: None) if json_out else console.print
    result = run_demo(out, device=device, quiet=quiet, say=say)
    if json_out:
        print_json(result)
