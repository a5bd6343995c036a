"""A user's ``--arch file.py:Class`` module runs once per command (review of issue 9: 4x for
``nnf layers``, 8x for ``nnf compare``), and again only when the file changes."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import torch

SOURCE = textwrap.dedent("""
    import pathlib

    import torch
    import torch.nn as nn

    with open(pathlib.Path(__file__).with_suffix(".log"), "a") as log:  # a side effect of importing
        log.write("imported\\n")


    class Net(nn.Module):
        def __init__(self, num_classes: int = 3):
            super().__init__()
            self.a = nn.Linear(6, 8)
            self.b = nn.Linear(8, num_classes)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))
""")


def _arch(folder: Path) -> tuple[str, Path]:
    """A fresh architecture file (its own path: nothing of it is cached yet) and its import log."""
    folder.mkdir()
    source = folder / "net.py"
    source.write_text(SOURCE)
    return f"{source}:Net", source.with_suffix(".log")


def _imports(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def _state_dicts(tmp_path: Path) -> tuple[Path, Path]:
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        tensors = {"a.weight": torch.randn(8, 6), "a.bias": torch.randn(8), "b.weight": torch.randn(3, 8),
                   "b.bias": torch.randn(3)}
        paths.append(tmp_path / f"m{seed}.pt")
        torch.save(tensors, paths[-1])
    return paths[0], paths[1]


def test_layers_imports_the_module_once(tmp_path, run_cli):
    arch, log = _arch(tmp_path / "layers")
    model, _ = _state_dicts(tmp_path)
    result = run_cli("layers", model, "--arch", arch, "--json")
    assert result.code == 0, result.err
    assert _imports(log) == 1


def test_compare_imports_the_module_once(tmp_path, run_cli):
    arch, log = _arch(tmp_path / "compare")
    original, suspect = _state_dicts(tmp_path)
    result = run_cli("compare", original, suspect, "--arch", arch, "--input-shape", "6", "--json")
    assert result.code == 0, result.err
    assert _imports(log) == 1


def test_an_edited_module_is_imported_again(tmp_path):
    from nnforensics.models.registry import build_model

    arch, log = _arch(tmp_path / "edited")
    build_model(arch)
    build_model(arch)
    assert _imports(log) == 1
    source = Path(arch.rpartition(":")[0])
    source.write_text(SOURCE.replace("nn.Linear(6, 8)", "nn.Linear(6, 16)").replace("nn.Linear(8, ", "nn.Linear(16, "))
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))  # a later mtime
    assert build_model(arch).a.out_features == 16
    assert _imports(log) == 2
