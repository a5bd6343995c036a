"""A self-contained HTML page for ``compare``: verdict, which layers changed and how."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from .html import Bullets, Image, KeyValues, Paragraph, Section, write_html  # noqa: E402
from .plots import plain  # noqa: E402
from .tables import Table, fmt_num  # noqa: E402

STAT_COLUMNS = [("cosine", "cosine"), ("rel_l2", "rel. L2 change"), ("norm_ratio", "norm ratio"),
                ("sparsity_original", "zeros (orig.)"), ("sparsity_suspect", "zeros (suspect)"),
                ("distinct_suspect", "distinct values"), ("neuron_norm_ratio_min", "neuron norm ratio min"),
                ("neuron_norm_ratio_max", "max")]


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def plot_changes(layers: list[dict[str, Any]]) -> Figure:
    """Per weight tensor: cosine with the original and relative L2 change (after re-synchronization)."""
    rows = [r for r in layers if r["tensor"].endswith("weight")] or layers
    names = [plain(r["tensor"]) for r in rows]
    fig = Figure(figsize=(max(6.0, 0.35 * len(rows) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["cosine"] for r in rows], 0.4, label="cosine with the original", color="tab:blue")
    ax.bar([i + 0.2 for i in x], [min(r["rel_l2"], 2.0) for r in rows], 0.4, label="relative L2 change (clipped at 2)",
           color="tab:red")
    ax.set_xticks(list(x), names, rotation=60, ha="right", fontsize=7)
    ax.axhline(1.0, color="0.5", linewidth=0.8, linestyle=":")
    ax.set_ylabel("after re-synchronization")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def write_compare_report(result: Any, path: str | os.PathLike, original: str, suspect: str) -> Path:
    """Write the page for a :class:`~nnforensics.integrity.CompareResult`; returns its path."""
    summary = {"verdict": result.verdict, "most likely modification": result.kind or "–",
               "similarity (share of mutual best-matching neurons)": fmt_num(result.similarity, 3),
               "groups that were permuted": result.permuted_groups,
               "output difference after re-synchronization (relative)": f"{result.output_difference:.3g}",
               "changed layers": ", ".join(result.changed_layers) or "none"}
    kinds = [f"{kind}: {count} tensor(s)" for kind, count in sorted(result.kinds.items())]
    tensor_table = Table(["tensor", *[title for _, title in STAT_COLUMNS], "change"],
                         [[r["tensor"], *[fmt_num(r.get(key), 4) if key in r else "" for key, _ in STAT_COLUMNS],
                           r.get("kind") or ("" if not r["changed"] else "?")] for r in result.layers],
                         title="Per tensor, after re-synchronization")
    group_table = Table(["group", "units", "kind", "margin", "mutual best %", "collisions"],
                        [[g["name"], str(g["size"]), g.get("kind", ""), fmt_num(g.get("margin"), 3),
                          fmt_num(g.get("unambiguous"), 1), str(g.get("collisions", 0))] for g in result.groups],
                        title="How each permutation group was matched")
    sections = [
        Section("Verdict", [KeyValues(summary)] + ([Bullets(kinds)] if kinds else [])),
        Section("What changed", [Image(_png(plot_changes(result.layers)), "per-tensor changes"), tensor_table]),
        Section("Re-synchronization", [
            Paragraph("The suspect's neurons were put back in the original's order (lap) before comparing. "
                      "margin: best minus second-best similarity; mutual best: the matched neurons are each "
                      "other's best match."), group_table]),
    ]
    return write_html(path, f"compare: {original} vs {suspect}", sections,
                      subtitle="nnforensics integrity comparison")
