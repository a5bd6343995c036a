"""nnf demo: the main job on real data that ships with a package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import app
from .common import DebugOpt, DeviceOpt, JsonOpt, QuietOpt, console, print_json


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo's models and report.")] = Path("nnf-demo"),
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train LeNet on real MNIST (cached in OUT) and report its test accuracy."""
    from ..demo import run_demo

    result = run_demo(out, device=device, quiet=quiet)
    if json_out:
        print_json(result)
    else:
        console.print(f"LeNet on MNIST: test accuracy {result['test_accuracy']:.2f}% on {result['test_n']} "
                      f"real test images ({result['model']})")
