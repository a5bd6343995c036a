"""nnf groups / permute / resync / compare: the core of Find the Lady."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..io.modelfile import save_model
from ..utils.atomic import atomic_write_text, check_not_input
from . import app
from .common import (
    ArchArgOpt,
    ArchOpt,
    DebugOpt,
    ExampleInputsOpt,
    InputShapeOpt,
    JsonOpt,
    OutOpt,
    QuietOpt,
    console,
    print_json,
    table,
)
from .loading import check_method, given_inputs, model_inputs, model_or_arch, open_model

ModelArg = Annotated[Path, typer.Argument(help="Model file (.safetensors, or .pt/.pth with --arch).")]
OriginalArg = Annotated[Path, typer.Argument(help="The original (owner's) model file.")]
SuspectArg = Annotated[Path, typer.Argument(help="The suspect model file (same architecture).")]
MethodOpt = Annotated[str, typer.Option("--method", help="lap (default), argmax, weight-matching or rank.")]


@app.command("groups")
def groups_cmd(
    model: Annotated[Optional[Path], typer.Argument(help="Model file; or give --arch alone.")] = None,
    arch: ArchOpt = None,
    arch_arg: ArchArgOpt = None,
    input_shape: InputShapeOpt = None,
    example_inputs: ExampleInputsOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The model's permutation groups (the names --groups accepts)."""
    from ..permutation import groups_of

    given = given_inputs(input_shape, example_inputs)
    loaded = model_or_arch(model, arch, arch_arg, inputs=given)
    gs = groups_of(loaded, model_inputs(loaded, given))
    rows = gs.summary()
    if json_out:
        print_json({"groups": rows, "units": gs.n_units, "validated": gs.validated})
        return
    console.print(table(None, ["group", "units", "kind", "tensors (axis, x block size)"],
                        [[r["name"], r["size"], r["kind"], ", ".join(r["members"][:6]) +
                          (" ..." if len(r["members"]) > 6 else "")] for r in rows]))
    console.print(f"{len(rows)} groups, {gs.n_units} units; every group checked to preserve the function"
                  if gs.validated else f"{len(rows)} groups")


@app.command("permute")
def permute_cmd(
    model: ModelArg,
    out: OutOpt,
    groups: Annotated[Optional[list[str]], typer.Option("--groups", help="Permute only these groups (repeatable; see nnf groups).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random permutations.")] = 0,
    truth_out: Annotated[Optional[Path], typer.Option("--truth-out", help="Write the true permutations (JSON) here.")] = None,
    arch: ArchOpt = None,
    arch_arg: ArchArgOpt = None,
    input_shape: InputShapeOpt = None,
    example_inputs: ExampleInputsOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Randomly permute neurons without changing the network's function."""
    from ..permutation import permute, save_truth

    check_not_input(out, [model, example_inputs])
    if truth_out is not None:
        check_not_input(truth_out, [model, out, example_inputs])
    given = given_inputs(input_shape, example_inputs)
    loaded = open_model(model, arch, arch_arg, inputs=given)
    result = permute(loaded, groups=groups, seed=seed, example_inputs=model_inputs(loaded, given))
    meta = loaded.meta.with_history(op="permute", seed=seed, groups=len(result.perms))
    save_model(result.model, out, meta, inputs=[model, *given.files()])
    if truth_out is not None:
        save_truth(truth_out, result.perms, model=Path(model).name, seed=seed)
    payload = {**result.to_dict(), "path": str(out), "truth": str(truth_out) if truth_out else None}
    if json_out:
        print_json(payload)
    elif not quiet:
        plural = "" if payload["groups"] == 1 else "s"
        console.print(f"wrote {out}: {payload['groups']} group{plural} ({payload['units']} units) permuted; "
                      f"largest output change {result.max_output_diff:.2e} (relative {result.relative_output_diff:.2e})")


@app.command("resync")
def resync_cmd(
    original: OriginalArg,
    suspect: SuspectArg,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the re-synchronized suspect here.")] = None,
    method: MethodOpt = "lap",
    truth: Annotated[Optional[Path], typer.Option("--truth", help="True permutations (from nnf permute --truth-out) to score Ψ.")] = None,
    arch: ArchOpt = None,
    arch_arg: ArchArgOpt = None,
    input_shape: InputShapeOpt = None,
    example_inputs: ExampleInputsOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Put the suspect's neurons back in the original's order (Find the Lady)."""
    from ..permutation import groups_of, load_truth
    from ..resynchronization import resync

    check_method(method)  # before any model is loaded
    if out is not None:
        check_not_input(out, [original, suspect, truth, example_inputs])
    given = given_inputs(input_shape, example_inputs)
    orig = open_model(original, arch, arch_arg, inputs=given)
    sus = open_model(suspect, arch, arch_arg, inputs=given)
    gs = groups_of(orig, model_inputs(orig, given))
    perms = load_truth(truth, gs) if truth is not None else None
    result = resync(orig, sus, method=method, truth=perms, group_set=gs, quiet=quiet)
    if out is not None:
        save_model(result.model, out, sus.meta.with_history(op="resync", method=method, original=Path(original).name),
                   inputs=[original, suspect, *given.files()])
    payload = {**result.to_dict(), "path": str(out) if out else None}
    if json_out:
        print_json(payload)
        return
    columns = ["group", "units", "Ψ %" if truth else "margin", "unambiguous %", "collisions"]
    rows = [[g["name"], g["size"], g["psi"] if truth else g.get("margin"), g.get("unambiguous"), g["collisions"]]
            for g in result.groups]
    console.print(table(f"re-synchronization ({method})", columns, rows))
    summary = f"Ψ = {result.psi:.2f}%" if result.psi is not None else "no truth given (Ψ needs --truth)"
    console.print(f"{summary}; {result.collisions} collisions; {result.seconds:.2f} s" + (f"; wrote {out}" if out else ""))


@app.command("compare")
def compare_cmd(
    original: OriginalArg,
    suspect: SuspectArg,
    method: MethodOpt = "lap",
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write the per-tensor table as CSV.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write a self-contained HTML report here.")] = None,
    arch: ArchOpt = None,
    arch_arg: ArchArgOpt = None,
    input_shape: InputShapeOpt = None,
    example_inputs: ExampleInputsOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Is the suspect a copy of the original? Verdict, similarity and a per-layer table."""
    from ..integrity import compare

    check_method(method)  # before any model is loaded
    for output in (csv, report):
        if output is not None:
            check_not_input(output, [original, suspect, example_inputs])
    given = given_inputs(input_shape, example_inputs)
    orig = open_model(original, arch, arch_arg, inputs=given)
    sus = open_model(suspect, arch, arch_arg, inputs=given)
    result = compare(orig, sus, method=method, example_inputs=model_inputs(orig, given), quiet=quiet or json_out)
    if csv is not None:
        import pandas as pd

        atomic_write_text(csv, pd.DataFrame(result.layers).to_csv(index=False))
    if report is not None:
        from ..report.compare import write_compare_report

        write_compare_report(result, report, Path(original).name, Path(suspect).name)
    if json_out:
        print_json(result.to_dict())
        return
    print_comparison(result)


#: Changed layers named on the verdict's second line before "and N more".
SHOWN_LAYERS = 40


def print_comparison(result) -> None:
    """Verdict first, then which layers changed, then the per-tensor table."""
    console.print(f"verdict: {result.summary()}")
    changed = result.changed_layers
    if result.verdict == "derived" and changed:
        more = len(changed) - SHOWN_LAYERS
        console.print(f"changed layers ({len(changed)}, in model order): " + ", ".join(changed[:SHOWN_LAYERS])
                      + (f" and {more} more (all in --json or --csv)" if more > 0 else ""))
    related = result.verdict != "unrelated"
    columns = ["tensor"] + (["change"] if related else []) + ["cosine", "rel. L2 change", "Ω (std ratio)",
                                                              "zeros % orig → suspect", "grid bits"]
    rows = []
    for r in result.layers:
        zeros = f"{100 * r['sparsity_original']:.1f} → {100 * r['sparsity_suspect']:.1f}"
        kind = [(r["kind"] or "") if r["changed"] else "unchanged"] if related else []
        rows.append([r["tensor"], *kind, r["cosine"], r["rel_l2"], r["omega"] if r["changed"] else None, zeros,
                     r.get("bits")])
    title = "per tensor, after re-synchronization" + ("" if related else
                                                      " (no correspondence: kinds of change do not apply)")
    console.print(table(title, columns, rows))
