"""One safe ``.npz`` reader and one set of limits, in the io layer (review of issue 9).

``--example-inputs`` had its own ``.npz`` reader, without the deflate-ratio check of
the data reader; the 1032:1 ratio, the input-size bound and the JSON constant hook
were each defined twice; io must not depend on data (io -> data -> models -> ...).
"""

from __future__ import annotations

import ast
import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest

import nnforensics
from nnforensics.data import load_dataset
from nnforensics.errors import CorruptFileError, DataError
from nnforensics.io.inputs import read_example_inputs
from nnforensics.io.npzfile import read_npz_arrays

PACKAGE = Path(nnforensics.__file__).parent


def _modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(PACKAGE)): ast.parse(p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))}


def _inflated(path: Path, declared: int) -> Path:
    """A compressed .npz whose zip directory claims ``declared`` uncompressed bytes for its one member."""
    np.savez_compressed(path, x=np.zeros((2, 1000), np.uint8))
    raw = bytearray(path.read_bytes())
    local, central = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, declared)  # uncompressed size, local header
    struct.pack_into("<I", raw, central + 24, declared)  # and central directory
    path.write_bytes(bytes(raw))
    return path


def test_example_inputs_and_data_share_the_deflate_ratio_check(tmp_path):
    bomb = _inflated(tmp_path / "bomb.npz", 10_000_000)
    with pytest.raises(CorruptFileError, match=r"member 'x\.npy' declares 9\.5 MiB, more than .* of compressed "
                                               r"data can hold"):
        read_example_inputs(bomb)
    with pytest.raises(CorruptFileError, match=r"member 'x\.npy' declares 9\.5 MiB"):
        load_dataset(f"npz:{bomb}", "all")


def test_the_callers_header_check_runs_before_any_data_is_read(tmp_path, monkeypatch):
    path = tmp_path / "a.npz"
    np.savez(path, a=np.ones((2, 3), np.float32), b=np.arange(4))
    import nnforensics.io.npzfile as npzfile

    def refuse(headers):
        assert [(k, h.shape, str(h.dtype)) for k, h in headers.items()] == [("a", (2, 3), "float32"),
                                                                             ("b", (4,), "int64")]
        raise DataError("refused from the headers")

    monkeypatch.setattr(npzfile, "read_exact", lambda *a: pytest.fail("data read before the check"))
    with pytest.raises(DataError, match="refused from the headers"):
        read_npz_arrays(path, check=refuse)


def test_io_does_not_depend_on_data_and_the_old_modules_are_gone():
    for name, tree in _modules().items():
        if not name.startswith("io/"):
            continue
        for node in ast.walk(tree):  # lazy imports inside functions count too
            if isinstance(node, ast.ImportFrom):
                target = ("." * node.level) + (node.module or "")
                assert not target.startswith(("..data", "nnforensics.data")), (name, target)
    for old in ("nnforensics.data.limits", "nnforensics.data.safe_npz"):
        assert importlib.util.find_spec(old) is None, old


def test_each_limit_and_json_hook_is_defined_once():
    ratio, bounds, hooks = [], [], []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value == 1032:
                ratio.append(name)
            if isinstance(node, ast.Assign):
                bounds += [name for t in node.targets if isinstance(t, ast.Name)
                           and t.id in ("MAX_INPUT_VALUES", "MAX_SHAPE_VALUES", "MAX_INPUT_DIMS")]
            if isinstance(node, ast.FunctionDef) and ("no_constant" in node.name or node.name == "refuse_constant"):
                hooks.append((name, node.name))
    assert ratio == ["io/limits.py"]
    assert bounds == ["io/limits.py"] * 2
    assert hooks == [("io/jsonfile.py", "refuse_constant")]
