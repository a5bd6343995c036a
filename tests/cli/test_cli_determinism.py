"""Same inputs and seed, same output bytes: ``init``, ``permute``, ``perturb --noise`` (issue 9, finding 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

STEPS = (
    ("init", "--arch", "lenet", "--arch-arg", "width=0.25", "--seed", "3", "-o", "{dir}/init.safetensors"),
    ("permute", "{dir}/init.safetensors", "--seed", "5", "-o", "{dir}/permuted.safetensors"),
    ("perturb", "{dir}/permuted.safetensors", "--noise", "0.5", "--seed", "7", "-o", "{dir}/noisy.safetensors"),
)
OUTPUTS = ("init.safetensors", "permuted.safetensors", "noisy.safetensors")


def _args(step: tuple[str, ...], folder: Path) -> list[str]:
    return [part.format(dir=folder) for part in step] + ["--quiet"]


def _run_in_process(run_cli, folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    for step in STEPS:
        result = run_cli(*_args(step, folder))
        assert result.code == 0, result.err
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


def test_same_seed_same_bytes_in_process(tmp_path, run_cli):
    """Three runs in one process: the metadata keys used to come out in a random order."""
    runs = [_run_in_process(run_cli, tmp_path / f"run{i}") for i in range(3)]
    for name in OUTPUTS:
        assert runs[0][name] == runs[1][name] == runs[2][name], name
    assert b"/run0" not in runs[0]["noisy.safetensors"]  # no temporary or absolute output path recorded


def test_same_seed_same_bytes_across_processes(tmp_path, run_cli):
    """Real ``python -m nnforensics`` processes (other hash seeds) write what the in-process run wrote."""
    expected = _run_in_process(run_cli, tmp_path / "here")
    folder = tmp_path / "there"
    folder.mkdir()
    for seed, step in zip(("1", "2", "3"), STEPS):
        env = {**os.environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, "-m", "nnforensics", *_args(step, folder)], capture_output=True,
                              text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
    for name in OUTPUTS:
        assert (folder / name).read_bytes() == expected[name], name
