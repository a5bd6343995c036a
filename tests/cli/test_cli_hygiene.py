"""What a user sees around the results (issue 9, finding 16): piped output, help texts,
--version, --device defaults, --json errors, warnings, library notices."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import typer

import nnforensics
from nnforensics.cli import app

ANSI = "\x1b["
BAR = "━"  # rich's progress bar (tables on stdout may use it; stderr carries no table)


def _nnf(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``nnf ARGS`` in a real subprocess, stdout and stderr piped (not terminals), no COLUMNS."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE")}
    return subprocess.run([sys.executable, "-m", "nnforensics", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def _commands(command=None, path=()) -> list[tuple[tuple[str, ...], object]]:
    """Every (sub)command of ``nnf`` with its path, the root and groups included."""
    command = command or typer.main.get_command(app)
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


# ---------------------------------------------------------------- piped output

def test_piped_tables_are_never_cut(run_cli):
    """A table wider than 80 columns reaches a file whole: no "…", nothing wrapped."""
    rows = run_cli("layers", "--arch", "resnet18", "--json").json()
    result = _nnf("layers", "--arch", "resnet18")
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout and ANSI not in result.stdout
    for row in rows:
        shapes = ", ".join(f"{k} {tuple(v)}" for k, v in row["parameters"].items())
        line = next((ln for ln in result.stdout.splitlines() if f" {row['name']} " in ln), "")
        assert row["type"] in line and shapes in line, (row, line)
    assert max(len(ln) for ln in result.stdout.splitlines()) > 100  # wider than any terminal default


def test_no_progress_bars_when_stderr_is_not_a_terminal(run_cli, tmp_path):
    model = tmp_path / "m.safetensors"
    assert run_cli("init", "--arch", "mlp", "--arch-arg", "width=0.25", "--data", "digits", "-o", model, "-q").code == 0
    result = _nnf("robustness", model, "--data", "digits", "--attack", "noise", "--levels", "1", "--seeds", "1",
                  "--methods", "lap", "--no-report", "-o", tmp_path / "sweep")
    assert result.returncode == 0, result.stderr
    for text in (result.stdout, result.stderr):
        assert ANSI not in text and "\r" not in text
    assert BAR not in result.stderr, result.stderr
    assert "Ψ" in result.stdout and "Psi" not in result.stdout


# ---------------------------------------------------------------- help, version, defaults

def test_version(run_cli):
    result = run_cli("--version")
    assert result.code == 0 and result.out == f"nnf (nnforensics) {nnforensics.__version__}\n"


def test_help_texts_name_value_kinds_not_python_types(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per option: nothing hides behind a wrap
    commands = _commands()
    assert len(commands) > 15
    for path, _ in commands:
        result = run_cli(*path, "--help")
        assert result.code == 0, (path, result.err)
        text = result.out
        assert "REFERENCE" not in text, path
        assert not re.search(r"<[a-zA-Z_]+(\[[^\]]*\])?>", text), (path, re.findall(r"<[^>\s]+>", text))
        assert not re.search(r"\bPsi\b", text), path


def test_one_device_default_everywhere():
    defaults = {" ".join(path): param.default for path, command in _commands()
                for param in getattr(command, "params", []) if param.name == "device"}
    assert len(defaults) >= 6  # train, eval, perturb, robustness, demo, watermark embed
    assert set(defaults.values()) == {"auto"}, defaults


def test_every_device_default_is_the_one_constant():
    """Review of issue 9: ``nnf train`` spelled "auto" itself; a changed default would have missed it."""
    import ast

    import nnforensics.cli as cli

    literal = []
    for source in sorted(Path(cli.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.FunctionDef):
                args = node.args.args[len(node.args.args) - len(node.args.defaults):]
                literal += [f"{source.name}:{node.name}" for arg, default in zip(args, node.args.defaults)
                            if ast.unparse(arg.annotation or ast.Constant(None)) == "DeviceOpt"
                            and not (isinstance(default, ast.Name) and default.id == "DEVICE_DEFAULT")]
    assert not literal, literal


@pytest.mark.parametrize("command", ["compare", "resync"])
def test_unknown_method_is_refused_before_any_model_is_read(expect_error, tmp_path, command):
    missing = tmp_path / "not-there.safetensors"  # would be "file not found" if the models were read first
    expect_error(command, missing, missing, "--method", "foo",
                 match=r"unknown method 'foo'; valid methods: argmax, lap, rank, weight-matching")


# ---------------------------------------------------------------- --json errors

def _deep_json(path: Path, depth: int = 100_000) -> Path:
    path.write_text("[" * depth + "]" * depth)
    return path


@pytest.mark.parametrize("args,code,match", [
    (lambda d: ["eval", d / "missing.safetensors", "--data", "digits"], 1, "file not found"),
    (lambda d: ["permute"], 2, "Missing argument"),
    (lambda d: ["init", "--arch", "lenett", "-o", d / "m.safetensors"], 1, "unknown architecture 'lenett'"),
    (lambda d: ["watermark", "extract", d / "m.safetensors", "--key", _deep_json(d / "key.json")], 1,
     "nested too deeply"),
])
def test_json_errors_are_json_on_stdout(run_cli, tmp_path, args, code, match):
    result = run_cli(*args(tmp_path), "--json")
    assert result.code == code
    lines = result.out.splitlines()
    assert len(lines) == 1, result.out
    payload = json.loads(lines[0])
    assert set(payload) == {"error", "exit_code"} and payload["exit_code"] == code
    assert re.search(match, payload["error"]) and "\n" not in payload["error"]
    assert result.err.splitlines() == [f"error: {payload['error']}"]  # the human's line stays


# ---------------------------------------------------------------- user JSON files nested too deeply

def test_deeply_nested_truth_file_is_a_clear_error(expect_error, tiny_model_file, tmp_path):
    truth = _deep_json(tmp_path / "truth.json")
    expect_error("resync", tiny_model_file, tiny_model_file, "--truth", truth,
                 match=r"truth file .* is nested too deeply")


def test_deeply_nested_sweep_config_is_a_clear_error(expect_error, tmp_path, tiny_model_file):
    results = tmp_path / "sweep"
    results.mkdir()
    _deep_json(results / "config.json")
    (results / "results.csv").write_text("cell_id\n")  # something for the report to find
    expect_error("report", results, match=r"config.json.* is nested too deeply")
    expect_error("robustness", tiny_model_file, "--data", "mnist", "--attack", "noise", "--levels", "1",
                 "--seeds", "1", "-o", results, match=r"config.json.* nested too deeply")


# ---------------------------------------------------------------- warnings and library notices

def test_own_warnings_are_one_clean_line_and_library_warnings_hidden(run_cli, monkeypatch):
    from nnforensics.cli import model_cmds
    from nnforensics.data import DataWarning

    real = model_cmds.list_models

    def noisy_list_models():
        warnings.warn("images have 3 different sizes; resizing all to 28x28\nsecond line", DataWarning)
        warnings.warn("some library's deprecation notice", FutureWarning)  # raised outside nnforensics
        return real()

    monkeypatch.setattr(model_cmds, "list_models", noisy_list_models)
    result = run_cli("models", "--json")
    assert result.code == 0
    json.loads(result.out)
    assert result.err == "warning: images have 3 different sizes; resizing all to 28x28\n"
    with pytest.warns(FutureWarning, match="deprecation notice"):  # --debug: handed on to Python's handler
        assert run_cli("models", "--json", "--debug").code == 0


def test_ray_startup_notices_do_not_reach_the_user(capfd):
    """Ray logs "Token authentication is enabled for this Ray cluster..." at WARNING level while starting."""
    pytest.importorskip("ray")
    from collections import ChainMap

    from nnforensics.experiments.executors import run_cells

    capfd.readouterr()
    outcomes = list(run_cells(ChainMap, {"k": 1}, [("a", {"x": 2})], executor="ray", workers=1, address=None))
    err = capfd.readouterr().err
    assert [cell for cell, outcome in outcomes if outcome.error is None] == ["a"], outcomes
    assert outcomes[0][1].result.rows == [{"x": 2, "k": 1}]
    assert "Token authentication" not in err and "WARNING" not in err, err
