"""nnf fragility: synaptic filtering (InferLink) — fragile, robust and antifragile layers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..utils.device import resolve_device
from ..utils.progress import info
from . import app
from .common import DEVICE_DEFAULT, DebugOpt, DeviceOpt, JsonOpt, QuietOpt, console, print_json, table
from .robustness_cmds import _fail_as_json


def _attack_args(step: float | None, steps: int | None, seed: int | None) -> dict:
    """PGD's options, only those given (FGSM takes none: giving one is refused by the attack)."""
    return {k: v for k, v in (("step", step), ("steps", steps), ("seed", seed)) if v is not None}


@app.command("fragility")
def fragility_cmd(
    models: Annotated[list[Path], typer.Argument(
        help="Model file(s) (.safetensors written by nnforensics); several (initialisations x epochs, e.g. the "
             "snapshots of nnf train --save-every) are analysed together.", metavar="MODEL...", show_default=False)],
    data: Annotated[str, typer.Option("--data", help="Dataset NAME[:PATH] to evaluate on (see nnf datasets).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results directory (re-running resumes it).")],
    filters: Annotated[str, typer.Option(
        "--filters", help="Comma-separated synaptic filters: high-pass, low-pass, pulse, reset (needs --init), "
                          "or all.")] = "high-pass,low-pass,pulse",
    scope: Annotated[str, typer.Option(
        "--scope", help="local (one layer at a time over its own weight range), global (every Conv/Linear layer "
                        "together, common thresholds) or both.")] = "local",
    thresholds: Annotated[int, typer.Option("--thresholds", help="Thresholds per filter (at least 2).")] = 25,
    layers: Annotated[Optional[str], typer.Option(
        "--layers", help="Comma-separated Conv/Linear layers (names from nnf layers); default: all.")] = None,
    attack: Annotated[str, typer.Option(
        "--attack", help="Attack on the inputs for adversarial accuracy: fgsm, pgd or none.")] = "fgsm",
    eps: Annotated[float, typer.Option("--eps", help="L-inf budget of the input attack, inputs in [0, 1].")] = 0.1,
    step: Annotated[Optional[float], typer.Option("--step", help="PGD step size (default eps/4).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="PGD iterations (default 10).")] = None,
    attack_seed: Annotated[Optional[int], typer.Option("--attack-seed", help="PGD random-start seed.")] = None,
    adversarial: Annotated[str, typer.Option(
        "--adversarial", help="fixed: adversarial inputs crafted once on the intact model (the paper; forward "
                              "passes only); adaptive: crafted again against each filtered model.")] = "fixed",
    init: Annotated[Optional[list[Path]], typer.Option(
        "--init", help="Weights at initialisation for the reset filter: one file for all models, or one per "
                       "model in order (e.g. NAME.epoch0.safetensors from nnf train --save-every).")] = None,
    split: Annotated[str, typer.Option("--split", help="Split to evaluate on.")] = "test",
    limit_eval: Annotated[int, typer.Option("--limit-eval", help="Evaluate on the first N images.")] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Evaluation batch size.")] = 500,
    tolerance: Annotated[float, typer.Option(
        "--tolerance", help="Verdict tolerance tau: fragile below -tau, antifragile above +tau (see docs).")] = 0.05,
    executor: Annotated[str, typer.Option("--executor", help="local (process pool) or ray.")] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster address.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Cells in parallel (1: in this process).")] = 1,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Build report.html at the end.")] = True,
    device: DeviceOpt = DEVICE_DEFAULT,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Remove each layer's weights below / above / around thresholds; which layers are fragile, robust, antifragile."""
    from ..experiments.fragility import run_fragility, write_scores

    scopes = ["local", "global"] if scope == "both" else [scope]
    summary = run_fragility(
        models, data, out, filters=filters, scopes=scopes, thresholds=thresholds,
        layers=[s.strip() for s in layers.split(",") if s.strip()] if layers else None,
        attack=attack, eps=eps, attack_args=_attack_args(step, steps, attack_seed), adversarial=adversarial,
        init_models=init, split=split, limit_eval=limit_eval, batch_size=batch_size, tolerance=tolerance,
        device=str(resolve_device(device)), executor=executor, workers=workers, address=address,
        quiet=quiet or json_out)
    _, verdicts = write_scores(out)
    report_path = None
    if report and not verdicts.empty:
        from ..report.fragility import write_fragility_report

        report_path = str(write_fragility_report(out))
        info(f"report: {report_path}", quiet or json_out)
    payload = {**summary.to_dict(), "results": str(out / "results.parquet"), "scores": str(out / "scores.parquet"),
               "verdicts": verdicts.to_dict("records"), "report": report_path}
    if json_out and summary.failed:
        _fail_as_json(payload, summary)
    if json_out:
        print_json(payload)
    elif not quiet and not verdicts.empty:
        several = verdicts["model"].nunique() > 1
        columns = (["model"] if several else []) + ["scope", "layer", "verdict", "confidence", "by filter"]
        rows = [([r["model"]] if several else []) + [r["scope"], r["layer"], r.get("verdict"), r.get("confidence"),
                                                      r.get("by_filter")] for r in verdicts.to_dict("records")]
        console.print(table("Synaptic filtering: verdict per layer", columns, rows))
        console.print(f"{summary.ran} cells run, {summary.skipped} already done, {len(summary.failed)} failed; "
                      f"results in {out / 'results.parquet'}")
    summary.raise_for_failures()
