"""build_report on synthetic results directories: files, values, self-contained and escaped HTML."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_synth import write_heatmaps, write_sweep

from nnforensics.errors import ConfigError
from nnforensics.report import build_report, load_sweeps, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert(1)</script> $x^{$"


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """One noise sweep with groups, heatmaps and watermark columns, reported once for this module."""
    path = tmp_path_factory.mktemp("full") / "noise"
    rows = write_sweep(path, attack="noise", seeds=4, ber=True)
    build_report(path, quiet=True)
    return path, rows


def test_report_writes_every_file(full_report):
    path, _ = full_report
    for name in ("table.md", "summary.csv", "groups_summary.csv", "report.html", "robustness-noise.png",
                 "heatmaps-noise.png", "timing-noise.png", "watermark.png"):
        assert (path / name).is_file(), name
    for png in path.glob("*.png"):
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, png.name
    assert not list(path.glob(".nnf-tmp-*")), "temporary files left behind"


def test_summary_csv_equals_hand_computed_stats(full_report):
    path, rows = full_report
    summary = pd.read_csv(path / "summary.csv")
    assert len(summary) == rows.groupby(["level", "method"]).ngroups
    for (level, method), part in rows.groupby(["level", "method"]):
        row = summary[(summary["level"] == level) & (summary["method"] == method)].iloc[0]
        assert row["n_seeds"] == 4
        assert row["psi_mean"] == pytest.approx(np.mean(part["psi"]))
        assert row["psi_std"] == pytest.approx(np.std(part["psi"], ddof=1))
        assert row["error_mean"] == pytest.approx(np.mean(part["error"]))
        assert row["ber_resync_mean"] == pytest.approx(np.mean(part["ber_resync"]))
    # weakest level first, methods in the config's order
    assert summary["level"].tolist()[:3] == [0, 0, 0]
    assert summary["method"].tolist()[:3] == ["lap", "argmax", "rank"]


def _md_row(table_md: str, level: str) -> list[str]:
    """Cells of the first table row whose first cell is ``level``."""
    for line in table_md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == level:
            return cells
    raise AssertionError(f"no row {level!r}")


def test_paper_table_shows_mean_pm_std_per_method_and_error_once(full_report):
    path, rows = full_report
    md = (path / "table.md").read_text(encoding="utf-8")
    header = next(line for line in md.splitlines() if line.startswith("| Ω"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["Ω", "Ψ (↑) lap", "Ψ (↑) argmax", "Ψ (↑) rank", "err % (↓)"]
    for level in (6, 10):
        cells = _md_row(md, str(level))
        for i, method in enumerate(("lap", "argmax", "rank")):
            psi = rows[(rows["level"] == level) & (rows["method"] == method)]["psi"].to_numpy()
            expected = f"{psi.mean():.2f} ± {psi.std(ddof=1):.2f}"
            assert cells[1 + i] == expected
        err = rows[(rows["level"] == level)].groupby("seed")["error"].first().to_numpy()
        assert cells[4] == f"{err.mean():.2f} ± {err.std(ddof=1):.2f}"
    assert _md_row(md, "0")[1] == "100 ± 0"  # whole numbers as in the paper
    assert "Per-group Ψ — lap" in md


def test_groups_summary_is_per_group(full_report):
    path, rows = full_report
    groups = pd.read_csv(path / "groups_summary.csv")
    assert set(groups["group"]) == {"features.0", "features.3", "classifier.0"}
    last = groups[(groups["group"] == "classifier.0") & (groups["level"] == 10) & (groups["method"] == "lap")].iloc[0]
    expected = rows[(rows["level"] == 10) & (rows["method"] == "lap")]["psi"].mean()
    assert last["psi_mean"] == pytest.approx(expected)
    assert last["size"] == 120


def test_html_is_self_contained(full_report):
    path, _ = full_report
    text = (path / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]*)"', text)
    assert len(sources) == 4  # robustness, heatmaps, timing, watermark
    assert all(re.fullmatch(r"data:image/png;base64,[A-Za-z0-9+/=]+", s) for s in sources)
    markup = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", text)  # base64 may spell anything
    assert "http" not in markup.lower() and "url(" not in markup.lower()
    assert 'src="file' not in markup and "<script" not in markup.lower() and "<link" not in markup.lower()
    assert "Ψ stays 100 up to Ω = " in text  # the summary in words
    assert "<table" in text and "± " in text


def test_html_and_markdown_escape_result_text(tmp_path):
    path = tmp_path / "evil"
    write_sweep(path, attack="noise", levels=[0, 5], seeds=2, methods=("lap", "a<b>|c"), model=EVIL, timing=False)
    html_path = build_report(path, quiet=True)
    text = html_path.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "a&lt;b&gt;|c" in text and "<b>" not in text
    md = (path / "table.md").read_text(encoding="utf-8")
    assert "<script" not in md and "a&lt;b&gt;\\|c" in md


def test_interrupted_sweep_reports_from_cells(tmp_path):
    path = tmp_path / "interrupted"
    rows = write_sweep(path, attack="quantize", seeds=3, layout="cells", keep_cells=5)
    write_heatmaps(path / "cells" / "c0004.npz", attack="quantize", level=8)
    report = write_report(path, quiet=True)
    (sweep,) = report.sweeps
    assert sweep.n_cells == len(rows) == 15 and sweep.expected_cells == 4 * 3 * 3 and not sweep.complete
    assert sweep.heatmaps is not None  # taken from the cell archive
    summary = pd.read_csv(path / "summary.csv")
    assert set(summary["level"]) == set(rows["level"])
    assert (path / "groups_summary.csv").is_file()
    text = report.html.read_text(encoding="utf-8")
    assert "Incomplete sweep: 15 of 36 (level, seed, method) results" in text
    # the report reads, it does not consolidate: the sweep engine owns results.parquet
    assert not (path / "results.parquet").exists()


def test_newer_cells_are_merged_over_an_older_results_parquet(tmp_path):
    path = tmp_path / "resumed"
    rows = write_sweep(path, attack="noise", levels=[0, 1], seeds=2, layout="cells", heatmaps=False)
    rows[rows["level"] == 0].to_parquet(path / "results.parquet", index=False)  # consolidated earlier
    old = time.time() - 100
    os.utime(path / "results.parquet", (old, old))
    (sweep,) = load_sweeps(path)
    assert len(sweep.rows) == len(rows) and sweep.rows["cell_id"].is_unique
    # once consolidated (newer than every cell), results.parquet alone is read
    rows.iloc[:3].to_parquet(path / "results.parquet", index=False)
    (sweep,) = load_sweeps(path)
    assert len(sweep.rows) == 3


def test_csv_only_results(tmp_path):
    path = tmp_path / "csv"
    rows = write_sweep(path, attack="prune", seeds=2, layout="csv", heatmaps=False)
    (sweep,) = load_sweeps(path)
    assert len(sweep.rows) == len(rows) and sweep.source == "results.csv"
    assert sweep.levels == [0.0, 0.9, 0.95, 0.98, 0.99]


def test_parent_directory_combines_sweeps_in_paper_order(tmp_path):
    parent = tmp_path / "all"
    for attack in ("prune", "quantize", "noise", "finetune"):
        write_sweep(parent / attack, attack=attack, seeds=2, ber=True, heatmaps=False, groups=False, timing=False)
    report = write_report(parent, quiet=True)
    assert [s.attack for s in report.sweeps] == ["noise", "finetune", "quantize", "prune"]
    assert report.out_dir == parent and (parent / "watermark.png").is_file()
    md = (parent / "table.md").read_text(encoding="utf-8")
    assert [m for m in ("| Ω |", "| Θ |", "| B |", "| T |") if m in md] == ["| Ω |", "| Θ |", "| B |", "| T |"]
    assert md.index("Gaussian noise") < md.index("fine-tuning") < md.index("quantization") < md.index("magnitude pruning")
    quant = _md_row(md, "16")  # quantization: 16 bits (weakest) first
    assert quant[1] == "100 ± 0"
    summary = pd.read_csv(parent / "summary.csv")
    assert list(dict.fromkeys(summary["sweep"])) == ["noise", "finetune", "quantize", "prune"]


def test_several_directories_need_an_output_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_sweep(a, attack="noise", levels=[0, 1], seeds=2, heatmaps=False, groups=False, timing=False)
    write_sweep(b, attack="noise", levels=[0, 1], seeds=2, heatmaps=False, groups=False, timing=False,
                model="other.safetensors")
    with pytest.raises(ConfigError, match="-o"):
        build_report([a, b], quiet=True)
    report = write_report([a, b], out_dir=tmp_path / "out", quiet=True)
    names = sorted(s.name for s in report.sweeps)
    assert names == ["noise-lenet-mnist", "noise-other"]  # same attack twice: the model tells them apart
    assert (tmp_path / "out" / "robustness-noise-other.png").is_file()
    assert not (a / "report.html").exists()


def test_method_dependent_error_is_shown_per_method(tmp_path):
    path = tmp_path / "odd"
    rows = write_sweep(path, attack="noise", levels=[0, 1], seeds=2, methods=("lap", "argmax"), heatmaps=False,
                       timing=False)
    rows.loc[rows["method"] == "argmax", "error"] += 5
    rows.to_parquet(path / "results.parquet", index=False)
    report = write_report(path, quiet=True)
    md = (path / "table.md").read_text(encoding="utf-8")
    assert "err % (↓) lap" in md and "err % (↓) argmax" in md
    assert report.html.is_file()


def test_svg_option(tmp_path):
    path = tmp_path / "svg"
    write_sweep(path, attack="finetune", seeds=2, heatmaps=False, groups=False, timing=False)
    report = write_report(path, quiet=True, svg=True)
    svg = path / "robustness-finetune.svg"
    assert svg in report.files and svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")
