"""Bad input through the CLI: non-zero exit, one readable line on stderr, no traceback."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import nnforensics.cli.model_cmds as model_cmds
from nnforensics.data import list_datasets


# ---------------------------------------------------------------- names and options

def test_unknown_architecture_lists_valid_ones(expect_error, tmp_path):
    expect_error("init", "--arch", "lenett", "-o", tmp_path / "m.safetensors",
                 match=r"unknown architecture 'lenett'; valid architectures: .*lenet, .*mlp")
    assert not (tmp_path / "m.safetensors").exists()


def test_unknown_dataset_lists_valid_ones(expect_error, tiny_model_file):
    expect_error("eval", tiny_model_file, "--data", "mnsit", match=r"unknown dataset 'mnsit'; valid datasets: .*digits.*mnist")


def test_arch_arg_typo_lists_accepted_arguments(expect_error, tmp_path):
    expect_error("init", "--arch", "lenet", "--arch-arg", "widht=0.5", "-o", tmp_path / "m.safetensors",
                 match=r"does not take argument\(s\) widht; it takes: .*width")
    expect_error("layers", "--arch", "lenet", "--arch-arg", "width", match="expected KEY=VALUE, got 'width'")


def test_layers_needs_a_model_or_an_arch(expect_error):
    expect_error("layers", match=r"give a model file or --arch NAME")


@pytest.mark.parametrize("option,value,match", [
    ("--epochs", "0", "epochs must be a positive number, got 0"),
    ("--lr", "-1", "learning rate must be a positive number"),
    ("--batch-size", "0", "batch size must be an integer >= 1"),
    ("--optimizer", "rmsprop", "unknown optimizer 'rmsprop'"),
    ("--schedule", "linear", "unknown schedule 'linear'"),
    ("--limit", "0", "limit must be a positive"),
    ("--device", "tpu", "unknown device 'tpu'"),
])
def test_bad_training_settings_fail_before_training(expect_error, tmp_path, option, value, match):
    out = tmp_path / "m.safetensors"
    expect_error("train", "--arch", "mlp", "--data", "digits", "-o", out, "--epochs", "1", "--quiet", option, value,
                 match=match)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(expect_error, tiny_model_file, tmp_path):
    expect_error("eval", tiny_model_file, "--data", "mnist", "--device", "cuda", match="no CUDA device is available")
    expect_error("train", "--arch", "mlp", "--data", "digits", "-o", tmp_path / "m.safetensors", "--device", "cuda",
                 match="no CUDA device is available")


@pytest.mark.parametrize("option,value,match", [
    ("--split", "dev", "unknown split 'dev'; choose one of train, val, test, trainval"),
    ("--limit", "0", "limit must be a positive"),
    ("--batch-size", "0", "batch size must be an integer >= 1"),
])
def test_bad_eval_settings(expect_error, tiny_model_file, option, value, match):
    expect_error("eval", tiny_model_file, "--data", "mnist", option, value, match=match)


def test_command_line_mistakes_exit_2_with_one_line(expect_error, tiny_model_file):
    expect_error("eval", tiny_model_file, match=r"Missing option '--data'.*see 'nnf eval --help'", code=2)
    expect_error("frobnicate", match="No such command 'frobnicate'", code=2)
    expect_error("eval", tiny_model_file, "--data", "digits", "--limit", "many", match="Invalid value for '--limit'",
                 code=2)


# ---------------------------------------------------------------- model files

def test_state_dict_not_matching_the_architecture(expect_error, tiny_state_dict_file):
    expect_error("eval", tiny_state_dict_file, "--arch", "lenet", "--data", "mnist",
                 match=r"weights do not match architecture 'lenet': shape mismatch: "
                       r"conv1\.weight file \(3, 1, 5, 5\) vs model \(6, 1, 5, 5\)")
    expect_error("layers", tiny_state_dict_file, "--arch", "mlp", match="missing keys: layers.1.weight")


def test_state_dict_without_arch(expect_error, tiny_state_dict_file):
    expect_error("eval", tiny_state_dict_file, "--data", "mnist", match="no nnforensics metadata; pass --arch NAME")


@pytest.mark.parametrize("kind", ["safetensors", "pt"])
def test_truncated_model_files(expect_error, tiny_model_file, tiny_state_dict_file, tmp_path, kind):
    src = tiny_model_file if kind == "safetensors" else tiny_state_dict_file
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    expect_error("eval", cut, "--arch", "lenet", "--arch-arg", "width=0.5", "--data", "mnist",
                 match=r"is not a readable (safetensors|PyTorch) file \(truncated or corrupt\?\)")


def test_corrupt_metadata_json(expect_error, tiny_model_file, tmp_path):
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(tiny_model_file)), str(bad), metadata={"nnforensics": '{"arch": "lenet", "arch_a'})
    expect_error("eval", bad, "--data", "mnist", match=r"bad\.safetensors.*model metadata is not valid JSON")


@pytest.mark.parametrize("name,content,match", [
    ("data.h5", b"\x89HDF\r\n\x1a\n" + bytes(64), r"unsupported model file type '\.h5'"),
    ("notes.txt", b"hello", r"unsupported model file type '\.txt'"),
    ("missing.safetensors", None, "file not found"),
    ("empty.safetensors", b"", "is empty"),
])
def test_files_that_are_not_models(expect_error, tmp_path, name, content, match):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    expect_error("eval", tmp_path / name, "--arch", "lenet", "--data", "mnist", match=match)


def test_directory_as_model(expect_error, tmp_path):
    expect_error("layers", tmp_path, match="expected a model file, got a directory")


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [2, 4])
def test_pickle_that_runs_code_is_refused(expect_error, tmp_path, protocol):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"conv1.weight": _Exploit(marker)}, protocol=protocol))
    expect_error("eval", evil, "--arch", "lenet", "--data", "mnist", match="refused to load model file", code=1)
    assert not marker.exists()


def test_nan_weights(expect_error, tiny_state_dict_file, tmp_path):
    tensors = torch.load(tiny_state_dict_file, weights_only=True)
    tensors["conv2.bias"][1] = float("nan")
    torch.save(tensors, tmp_path / "nan.pt")
    expect_error("eval", tmp_path / "nan.pt", "--arch", "lenet", "--arch-arg", "width=0.5", "--data", "mnist",
                 match=r"contain NaN or Inf values: conv2\.bias \(1 of 8 values\)")


# ---------------------------------------------------------------- outputs

def test_output_equal_to_an_input_is_refused(expect_error, tiny_model_file):
    before = tiny_model_file.read_bytes()
    expect_error("train", "--arch", "mlp", "--data", f"mnist:{tiny_model_file}", "-o", tiny_model_file,
                 match="is also an input; choose another output")
    assert tiny_model_file.read_bytes() == before


def test_bad_output_paths(expect_error, tmp_path):
    expect_error("init", "--arch", "lenet", "-o", tmp_path / "m.pt", match=r"written as \.safetensors")
    (tmp_path / "dir.safetensors").mkdir()
    expect_error("init", "--arch", "lenet", "-o", tmp_path / "dir.safetensors", match="is a directory")


def test_eval_on_data_of_another_shape(expect_error, tiny_model_file):
    expect_error("eval", tiny_model_file, "--data", "digits",
                 match=r"the model expects inputs of shape \(1, 28, 28\) but dataset 'digits' has \(1, 8, 8\)")


def test_eval_imported_state_dict_on_data_of_another_shape(expect_error, tiny_state_dict_file):
    expect_error("eval", tiny_state_dict_file, "--arch", "lenet", "--arch-arg", "width=0.5", "--data", "digits",
                 match=r"cannot take inputs of shape \(1, 8, 8\)|expects inputs of shape")


# ---------------------------------------------------------------- how failures are reported

def test_debug_shows_the_traceback(run_cli, tmp_path):
    result = run_cli("--debug", "eval", tmp_path / "missing.safetensors", "--data", "digits")
    assert result.code == 1 and "Traceback" in result.err
    assert result.err.strip().splitlines()[-1].startswith("error: file not found")


@pytest.mark.parametrize("raised,code,match", [
    (RuntimeError("boom"), 3, r"internal error: RuntimeError: boom \(run with --debug for the traceback\)"),
    (PermissionError(13, "Permission denied", "/x/y"), 1, r"Permission denied: '/x/y'"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_unexpected_failures_are_one_line(expect_error, monkeypatch, raised, code, match):
    def fail():
        raise raised

    monkeypatch.setattr(model_cmds, "list_models", fail)
    expect_error("models", match=match, code=code)


def test_real_process_prints_one_line(tmp_path):
    """The installed ``nnf`` script, not just ``main()``: one line, exit 1."""
    nnf = shutil.which("nnf", path=str(Path(sys.executable).parent)) or shutil.which("nnf")
    if nnf is None:
        pytest.skip("the nnf script is not installed")
    proc = subprocess.run([nnf, "eval", str(tmp_path / "nope.safetensors"), "--data", "digits"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"error: file not found: '{tmp_path / 'nope.safetensors'}'"]


# ---------------------------------------------------------------- corrupt data files (data engineer's readers)

def test_corrupt_h5_dataset(expect_error, tiny_model_file, tmp_path):
    if "h5" not in {entry.name for entry in list_datasets()}:
        pytest.skip("no 'h5' dataset reader registered yet")
    import h5py
    import numpy as np

    good = tmp_path / "data.h5"
    with h5py.File(good, "w") as handle:
        handle["data"] = np.zeros((4, 1, 28, 28), dtype=np.float32)
        handle["label"] = np.zeros(4, dtype=np.int64)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[:1000])
    expect_error("eval", tiny_model_file, "--data", f"h5:{cut}", match=r"cut\.h5")
