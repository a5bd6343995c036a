"""nnf robustness: the paper's robustness sweep (permute, perturb, re-synchronize, measure)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from ..errors import NNFError
from ..utils.device import resolve_device
from ..utils.progress import info
from . import app
from .common import (
    DEVICE_DEFAULT,
    ArchArgOpt,
    ArchOpt,
    DebugOpt,
    DeviceOpt,
    ExampleInputsOpt,
    InputShapeOpt,
    JsonOpt,
    QuietOpt,
    console,
    print_json,
    table,
)
from .loading import arch_args_for, given_inputs, parse_input_shape


def _report(results_dir: Path, quiet: bool) -> str:
    """Build the sweep's report (returns its path)."""
    from ..report import build_report

    path = build_report(results_dir, quiet=quiet)
    info(f"report: {path}", quiet)
    return str(path)


def _summary_rows(results_dir: Path) -> list[list]:
    """Mean Ψ and error per (level, method), in sweep order."""
    import pandas as pd

    frame = pd.read_parquet(results_dir / "results.parquet")
    if frame.empty:
        return []
    grouped = frame.groupby(["level", "method"], sort=False).agg(
        psi=("psi", "mean"), psi_std=("psi", "std"), error=("error", "mean"), seeds=("seed", "nunique"))
    return [[level, method, r.psi, r.psi_std, r.error, r.seeds] for (level, method), r in grouped.iterrows()]


def _fail_as_json(payload: dict, summary) -> NoReturn:  # noqa: ANN001
    """``--json`` with failed cells: the summary and the error as one JSON line, then exit non-zero."""
    try:
        summary.raise_for_failures()
    except NNFError as err:
        print_json({**payload, "error": str(err), "exit_code": err.exit_code})
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(err.exit_code) from None
    raise AssertionError("unreachable: the summary has failed cells")


@app.command("robustness")
def robustness_cmd(
    model: Annotated[Path, typer.Argument(help="Model file (.safetensors, or a .pt/.pth state dict with --arch).")],
    data: Annotated[str, typer.Option("--data", help="Dataset NAME[:PATH]: test split for the error, "
                                                     "train split for --attack finetune.")],
    attack: Annotated[str, typer.Option("--attack", help="noise, finetune, quantize, prune or scale.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results directory (re-running resumes it).")],
    levels: Annotated[Optional[str], typer.Option(
        "--levels", help="Comma-separated levels. Default (paper): noise 0..10, finetune 2,4,6,8,10 (%), "
                         "quantize 16..2 (bits), prune 0.90..0.99, scale 0.5,0.9,1.1,1.5,2.")] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Number of seeds (0..N-1).")] = 10,
    methods: Annotated[Optional[str], typer.Option(
        "--methods", help="Comma-separated re-synchronization methods (default: lap,argmax,weight-matching,rank).")] = None,
    target: Annotated[Optional[str], typer.Option(
        "--target", help="Permute and perturb only this layer (or penultimate); default: every group / layer. "
                         "Fine-tuning and quantization always act on the whole model, as in the paper.")] = None,
    global_prune: Annotated[bool, typer.Option("--global", help="Prune with one threshold over all chosen layers.")] = False,
    fraction: Annotated[Optional[float], typer.Option("--fraction", help="scale: a random fraction of neurons.")] = None,
    limit_eval: Annotated[Optional[int], typer.Option("--limit-eval", help="Evaluate on the first N test images.")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (process pool) or ray.")] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster address (default: a local instance).")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Cells in parallel (1: in this process).")] = 1,
    watermark_key: Annotated[Optional[Path], typer.Option(
        "--watermark-key", help="Also record the watermark's BER: after the attack alone, after permutation + "
                                "attack (raw) and after re-synchronization (paper Fig. 7).")] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Build the report at the end.")] = True,
    arch: ArchOpt = None,
    arch_arg: ArchArgOpt = None,
    input_shape: InputShapeOpt = None,
    example_inputs: ExampleInputsOpt = None,
    device: DeviceOpt = DEVICE_DEFAULT,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Ψ and error under one attack, over levels x seeds x methods (paper Tables 1-4)."""
    from ..experiments.robustness import run_robustness

    given_inputs(input_shape, example_inputs)  # both given, or a bad file: refused before any work
    summary = run_robustness(model, data, attack, out, levels=levels, seeds=seeds, methods=methods, target=target,
                             limit_eval=limit_eval, global_prune=global_prune, fraction=fraction,
                             device=str(resolve_device(device)), executor=executor, workers=workers,
                             address=address, quiet=quiet or json_out, watermark_key=watermark_key,
                             arch=arch, arch_args=arch_args_for(arch, arch_arg) or None,
                             input_shape=parse_input_shape(input_shape), example_inputs=example_inputs)
    report_path = _report(out, quiet or json_out) if report and summary.ran + summary.skipped > 0 else None
    payload = {**summary.to_dict(), "results": str(out / "results.parquet"), "report": report_path}
    if json_out and summary.failed:
        _fail_as_json(payload, summary)
    if json_out:
        print_json(payload)
    elif not quiet:
        rows = _summary_rows(out)
        console.print(table(f"{attack}: Ψ (%) and error (%), mean over seeds",
                            ["level", "method", "Ψ", "Ψ std", "error", "seeds"], rows))
        console.print(f"{summary.ran} cells run, {summary.skipped} already done, {len(summary.failed)} failed; "
                      f"results in {out / 'results.parquet'}")
    summary.raise_for_failures()
