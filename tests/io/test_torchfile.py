"""Refused .pt files: the message names what was refused and why, and never advises allowing it."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from nnforensics.errors import CorruptFileError, UnsafeFileError
from nnforensics.io import load_checkpoint
from nnforensics.models import load_model
from nnforensics.io.torchfile import pickle_globals, torch_load_weights_only


class _EvalPayload:
    """Unpickling this calls ``builtins.eval`` on code that creates ``marker``: the marker proves it ran."""

    def __init__(self, marker: Path):
        self.code = f"open({str(marker)!r}, 'w').close()"

    def __reduce__(self):
        return (eval, (self.code,))


def _write(path: Path, payload: object, writer: str) -> Path:
    if writer == "torch.save":
        torch.save({"conv1.weight": torch.zeros(1), "evil": payload}, path)
    else:
        path.write_bytes(pickle.dumps({"conv1.weight": payload}, protocol=int(writer[-1])))
    return path


ADVICE = ("add_safe_globals", "safe_globals", "allowlist", "allow-list", "weights_only=False", "if you trust")


@pytest.mark.parametrize("writer", ["torch.save", "pickle-2", "pickle-4", "pickle-5"])
def test_refusal_names_the_global_and_never_advises_allowing_it(tmp_path, writer):
    marker = tmp_path / "RAN"
    path = _write(tmp_path / "evil.pt", _EvalPayload(marker), writer)
    for load in (lambda: load_model(path, arch="lenet"), lambda: load_checkpoint(path)):
        with pytest.raises(UnsafeFileError) as info:
            load()
        message = str(info.value)
        assert "builtins.eval" in message and "would run" in message, message
        assert not any(word in message.lower() for word in ADVICE), message
        assert "\n" not in message and "\x1b" not in message
    assert not marker.exists()


def test_globals_are_found_without_unpickling(tmp_path):
    marker = tmp_path / "RAN"
    path = _write(tmp_path / "evil.pt", _EvalPayload(marker), "pickle-4")
    assert "builtins.eval" in pickle_globals(path)
    state = tmp_path / "ok.pt"
    torch.save({"w": torch.zeros(2)}, state)
    assert "builtins.eval" not in pickle_globals(state)
    assert not marker.exists()


def test_deflated_pt_that_would_inflate_to_gigabytes_is_refused_before_loading(tmp_path):
    """torch reads deflated zip members too, allocating their declared size: a tiny file could ask for gigabytes."""
    stored = tmp_path / "stored.pt"
    torch.save({"w": torch.zeros(3000, 3000)}, stored)  # 36 MB of zeros
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(stored) as src, zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info.filename))
    assert bomb.stat().st_size < 200_000
    with pytest.raises(CorruptFileError, match=r"would inflate from [\d,]+ to [\d,]+ bytes"):
        load_model(bomb, arch="lenet")
    assert torch_load_weights_only(stored)["w"].shape == (3000, 3000)  # the same content, stored: fine


# ---------------------------------------------------------------- tensors that are not plain dense CPU tensors

def _lenet_state_dict(tiny_model_file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(tiny_model_file))


def _quantized(t: torch.Tensor) -> torch.Tensor:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates its quantized tensors
        return torch.quantize_per_tensor(t, 0.01, 0, torch.qint8)


@pytest.mark.parametrize("make, match", [
    (lambda t: t.to_sparse(), r"'fc1\.weight' is a sparse_coo tensor \(save it dense"),
    (lambda t: t.to_sparse_csr(), r"'fc1\.weight' is a sparse_csr tensor"),
    (_quantized, r"'fc1\.weight' is a quantized qint8 tensor \(save tensor\.dequantize\(\)\)"),
    (lambda t: torch.empty_like(t, device="meta"), r"'fc1\.weight' is a tensor on device 'meta'"),
    (lambda t: t[:1, :1].clone().expand(t.shape),
     r"'fc1\.weight' is a view of shape \(60, 200\) over 4 bytes .*overlapping"),
])
def test_state_dicts_with_non_dense_tensors_are_refused(tmp_path, tiny_model_file, run_cli, make, match):
    """Review of issue 9: a sparse tensor in a .pt ended in exit 3 (NotImplementedError in the NaN check)."""
    import warnings

    tensors = _lenet_state_dict(tiny_model_file)
    path = tmp_path / "odd.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sparse CSR is "beta"
        tensors["fc1.weight"] = make(tensors["fc1.weight"])
        torch.save(tensors, path)
    with pytest.raises(CorruptFileError, match=match):
        load_model(path, arch="lenet", arch_args={"width": 0.5})
    result = run_cli("layers", path, "--arch", "lenet", "--arch-arg", "width=0.5")
    lines = result.err.strip().splitlines()
    assert result.code == 1 and len(lines) == 1 and "odd.pt" in lines[0] and "internal error" not in lines[0], \
        result.err


def test_check_finite_names_tensors_it_cannot_check():
    """The NaN/Inf check itself never crashes, whatever tensor it is handed."""
    from nnforensics.errors import InvalidWeightsError
    from nnforensics.io.modelfile import check_finite

    weight = torch.ones(3, 4)
    for odd, kind in [(weight.to_sparse(), "sparse_coo"), (_quantized(weight), "qint8"),
                      (torch.empty(3, device="meta"), "on meta")]:
        with pytest.raises(InvalidWeightsError, match=rf"tensor 'w' \(.*{kind}.*cannot be checked for NaN/Inf"):
            check_finite({"w": odd})
    check_finite({"w": weight, "n": torch.tensor([1, 2])})  # plain tensors: no error
