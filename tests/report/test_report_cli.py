"""nnf report: JSON output with the written paths, plain output, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from nnforensics.cli import main


def test_cli_report_json(sweep_dir, capsys):
    path, _ = sweep_dir(levels=[0, 3, 6], seeds=2, ber=True)
    capsys.readouterr()
    assert main(["report", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    payload = json.loads(out)
    assert Path(payload["report"]) == path / "report.html"
    assert all(Path(f).is_file() for f in payload["files"])
    assert {Path(f).name for f in payload["files"]} >= {"table.md", "summary.csv", "report.html", "robustness-noise.png"}
    (sweep,) = payload["sweeps"]
    assert sweep["attack"] == "noise" and sweep["complete"] is True and sweep["cells"] == 3 * 2 * 3


def test_cli_report_out_dir_and_plain_output(sweep_dir, run_cli, tmp_path):
    a, _ = sweep_dir("a", attack="noise", levels=[0, 1], seeds=2, heatmaps=False, timing=False)
    b, _ = sweep_dir("b", attack="prune", levels=[0.9, 0.99], seeds=2, heatmaps=False, timing=False)
    result = run_cli("report", a, b, "-o", tmp_path / "combined")
    assert result.code == 0, result.err
    assert "wrote" in result.out and (tmp_path / "combined" / "report.html").is_file()
    result = run_cli("report", a, b, "--quiet")
    assert result.code == 1 and result.err.startswith("error:") and "-o" in result.err


def test_cli_report_errors_are_one_line(run_cli, tmp_path):
    result = run_cli("report", tmp_path / "missing")
    assert result.code == 1
    assert result.err.strip().startswith("error:") and "does not exist" in result.err
    assert len(result.err.strip().splitlines()) == 1
