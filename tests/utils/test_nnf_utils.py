"""Atomic writes, output-is-input checks, device selection and seeding helpers."""

from __future__ import annotations

import os

import pytest
import torch

from nnforensics.errors import ConfigError, FileClobberError
from nnforensics.utils.atomic import TMP_PREFIX, atomic_path, atomic_write_text, check_not_input
from nnforensics.utils.device import resolve_device
from nnforensics.utils.seeding import derive_seed, torch_generator


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(TMP_PREFIX)]


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path, error):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(type(error)):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise error
    assert dest.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_success_replaces_and_creates_folders(tmp_path):
    dest = tmp_path / "a" / "b" / "out.txt"
    atomic_write_text(dest, "new")
    assert dest.read_text() == "new" and _leftovers(dest.parent) == []


def test_existing_mode_is_kept(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    dest.chmod(0o640)
    atomic_write_text(dest, "new")
    assert dest.stat().st_mode & 0o777 == 0o640


def test_directory_output_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        atomic_write_text(tmp_path, "x")


def test_check_not_input_catches_aliases(tmp_path):
    src = tmp_path / "in.safetensors"
    src.write_text("x")
    os.symlink(src, tmp_path / "link.safetensors")
    os.link(src, tmp_path / "hard.safetensors")
    for alias in (src, tmp_path / "." / "in.safetensors", tmp_path / "link.safetensors", tmp_path / "hard.safetensors"):
        with pytest.raises(FileClobberError, match="is also an input"):
            check_not_input(alias, [None, src])
    check_not_input(tmp_path / "other.safetensors", [src, None])


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ConfigError, match="unknown device 'tpu'; choose one of auto, cpu, cuda, mps"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA device is available"):
        resolve_device("cuda")


def test_seeds_are_stable_and_separate():
    assert derive_seed("init", 0) == derive_seed("init", 0) != derive_seed("data", 0)
    assert 0 <= derive_seed("x") < 2**63
    a = torch.rand(3, generator=torch_generator("data", 1, 0))
    assert torch.equal(a, torch.rand(3, generator=torch_generator("data", 1, 0)))
