"""A self-contained HTML page for ``compare``: the conclusion first, then what changed and how."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from ..integrity.kinds import READINGS  # noqa: E402
from .html import Bullets, Image, KeyValues, Paragraph, Section, write_html  # noqa: E402
from .plots import plain  # noqa: E402
from .tables import Table, fmt_num  # noqa: E402



def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


def plot_changes(layers: list[dict[str, Any]]) -> Figure:
    """Per weight tensor: cosine with the original and relative L2 change (after re-synchronization)."""
    rows = [r for r in layers if r.get("is_weight")] or layers
    names = [plain(r["tensor"]) for r in rows]
    fig = Figure(figsize=(min(11.0, max(6.0, 0.35 * len(rows) + 2)), 4.2), layout="constrained")
    ax = fig.subplots()
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["cosine"] for r in rows], 0.4, label="cosine with the original", color="tab:blue")
    ax.bar([i + 0.2 for i in x], [min(r["rel_l2"], 2.0) for r in rows], 0.4,
           label="relative L2 change ‖Δ‖/‖W‖ (clipped at 2)", color="tab:red")
    ax.set_xticks(list(x), names, rotation=60, ha="right", fontsize=7)
    ax.axhline(1.0, color="0.5", linewidth=0.8, linestyle=":")
    ax.set_ylabel("after re-synchronization")
    fig.legend(loc="outside upper center", ncol=2, fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _facts(result: Any) -> dict[str, str]:
    """The numbers behind the conclusion, each with its meaning and unit."""
    facts = {"verdict": f"{result.verdict} ({result.confidence} confidence)"}
    if result.verdict == "identical":
        return {**facts, "tensors": f"all {len(result.layers)} floating-point tensors are bit-for-bit the original's"}
    if result.basis == "tensors":
        facts["weight tensors correlated"] = (
            f"{result.reidentified} of {result.units} — weight tensors whose values correlate with the original's "
            f"beyond chance (1 %, Bonferroni); the network has no permutation group of 3 or more neurons to "
            f"re-identify, so the verdict rests on whole tensors and is given with low confidence")
    else:
        facts["neurons re-identified"] = (
            f"{result.reidentified} of {result.units} = similarity {result.similarity:.3f} — share of the original's "
            f"neurons whose counterpart in the suspect stands out beyond chance (1 % per neuron, Bonferroni over "
            f"the candidates; groups of at least 3 units)")
    if result.verdict == "derived":
        facts["most likely modification"] = (f"{result.kind} ({result.kind_detail}); read in {result.kind_votes} "
                                             f"({result.kind_confidence} agreement)")
        facts["kind readings (tensors)"] = ", ".join(f"{k}: {n}" for k, n in sorted(result.kinds.items()))
    if result.permuted_groups is not None:
        facts["permutation groups found out of order"] = f"{result.permuted_groups} of {len(result.groups)}"
    facts["output change after re-synchronization"] = (
        f"{_pct(result.output_difference)} — largest |Δ output| over the largest |output| of the original, on "
        f"random example inputs (uniform in [0, 1], not real data; 0 % for a permuted copy)")
    if result.verdict == "derived":
        facts["changed layers (model order)"] = ", ".join(result.changed_layers) or "none"
    return facts


def _meaning(result: Any) -> str:
    if result.verdict == "unrelated":
        return ("Independently trained networks of one architecture share a few neurons by chance (at most 4.4 % in "
                "our calibration, benchmarks/compare_calibration.py). Per-layer kinds of change describe how a copy "
                "was modified and do not apply to unrelated networks, so none is given.")
    if result.verdict == "derived":
        return ("The suspect's neurons were put back in the original's order before comparing; the readings below "
                "describe how the copy differs from the original, tensor by tensor, over the re-identified neurons.")
    return "The suspect computes exactly what the original computes."


def _tensor_table(result: Any) -> Table:
    related = result.verdict != "unrelated"
    columns = ["tensor"] + (["reading"] if related else []) + [
        "cosine", "‖Δ‖ / ‖W‖", "Ω = std Δ / std W", "zeros % (orig → suspect)", "grid (bits)",
        "neuron L2-norm ratio (min – max)"]
    rows = []
    for r in result.layers:
        norms = (f"{fmt_num(r['neuron_norm_ratio_min'], 3)} – {fmt_num(r['neuron_norm_ratio_max'], 3)}"
                 if "neuron_norm_ratio_min" in r else "")
        kind = [(r["kind"] or "") if r["changed"] else "unchanged"] if related else []
        rows.append([r["tensor"], *kind, fmt_num(r["cosine"], 4), fmt_num(r["rel_l2"], 4),
                     fmt_num(r["omega"], 3) if r["changed"] else "",
                     f"{100 * r['sparsity_original']:.1f} → {100 * r['sparsity_suspect']:.1f}",
                     str(r.get("bits", "")), norms])
    note = ("cosine and ‖Δ‖/‖W‖ (relative L2 change, unit-free) compare each whole tensor with the original's; "
            "Ω is the paper's noise level when the change is Gaussian noise; the neuron norm ratio is the L2-norm "
            "check of Find the Lady (1 for every neuron unless neurons were scaled).")
    return Table(columns, rows, title="Per tensor, after re-synchronization", note=note)


def write_compare_report(result: Any, path: str | os.PathLike, original: str, suspect: str) -> Path:
    """Write the page for a :class:`~nnforensics.integrity.CompareResult`; returns its path."""
    group_table = Table(["group", "units", "re-identified", "margin", "mutual best %", "collisions"],
                        [[g["name"], str(g["size"]), str(g.get("reidentified", "–")), fmt_num(g.get("margin"), 3),
                          fmt_num(g.get("unambiguous"), 1), str(g.get("collisions", 0))] for g in result.groups],
                        title="How each permutation group was matched",
                        note="margin: best minus second-best cosine similarity (0-2); mutual best: share of matched "
                             "neurons that are each other's best match; re-identified: neurons beyond chance.")
    sections = [
        Section("Conclusion", [Paragraph(result.summary(), "lead"), Paragraph(_meaning(result)),
                               KeyValues(_facts(result))]),
        Section("What changed", [Image(_png(plot_changes(result.layers)), "per-tensor changes",
                                       "Cosine with the original (blue) and relative L2 change (red) per weight "
                                       "tensor, after re-synchronization."),
                                 _tensor_table(result)]),
        Section("Re-synchronization", [group_table]),
        Section("How to read the readings", [Bullets([f"{kind}: {text}" for kind, text in READINGS.items()])]),
    ]
    return write_html(path, f"compare: {original} vs {suspect}", sections,
                      subtitle="nnforensics integrity comparison")
