"""The restricted unpickler: data in, code never run."""

from __future__ import annotations

import gzip
import os
import pickle
from importlib import resources

import numpy as np
import pytest
from datafmt import py2_pickle

from nnforensics.data import load_data_pickle
from nnforensics.errors import CorruptFileError, UnsafeFileError


class RunsCode:
    """A classic pickle exploit: unpickling calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Evil:
    def __reduce__(self):
        return eval, ("__import__('os').getcwd()",)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_reduce_to_os_system_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": RunsCode(marker), b"labels": [1]}, protocol=protocol)
    with pytest.raises(UnsafeFileError, match="system"):
        load_data_pickle(payload, "evil")
    assert not marker.exists()


@pytest.mark.parametrize("obj", [Evil(), {1, 2}, np.int64(3), np.ma.masked_array([1, 2])])
def test_other_globals_are_refused(obj):
    with pytest.raises(UnsafeFileError):
        load_data_pickle(pickle.dumps(obj, protocol=2), "file")


def test_handcrafted_globals_are_refused():
    # GLOBAL builtins.getattr / posix.system via protocol-0 text opcodes
    for payload in (b"cbuiltins\ngetattr\n(S'x'\nS'y'\ntR.", b"cposix\nsystem\n(S'true'\ntR.",
                    b"c__builtin__\neval\n(S'1'\ntR."):
        with pytest.raises(UnsafeFileError):
            load_data_pickle(payload, "crafted")


def test_allowed_helpers_cannot_be_abused():
    # bytes(n) would allocate n bytes; only bytes() is allowed
    with pytest.raises(UnsafeFileError):
        load_data_pickle(b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x40\x85R.", "bomb")
    # _reconstruct may only build plain ndarrays, never another class
    with pytest.raises(UnsafeFileError):
        load_data_pickle(b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85U\x01b\x87R.", "x")
    # object dtypes would let arbitrary objects into arrays
    with pytest.raises(UnsafeFileError):
        load_data_pickle(b"\x80\x02cnumpy\ndtype\nU\x02O8K\x00K\x01\x87R.", "x")
    # _codecs.encode only for latin-1 text
    with pytest.raises(UnsafeFileError):
        load_data_pickle(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00utf-8\x86R.", "x")


def test_build_cannot_modify_the_allowed_callables():
    # BUILD with slot state (setattr) and with dict state (__dict__) on the guarded dtype factory
    for payload in (b"\x80\x02cnumpy\ndtype\nN}X\x03\x00\x00\x00_fnK\x01s\x86b.", b"\x80\x02cnumpy\ndtype\n}U\x03_fnK\x01sb.",
                    b"\x80\x02cnumpy\nndarray\n}U\x01aK\x01sb."):
        with pytest.raises((UnsafeFileError, CorruptFileError)):
            load_data_pickle(payload, "x")
    assert load_data_pickle(py2_pickle(np.arange(3, dtype=np.uint8)), "ok").tolist() == [0, 1, 2]


@pytest.mark.parametrize("writer", [py2_pickle, lambda o: pickle.dumps(o, protocol=2),
                                    lambda o: pickle.dumps(o, protocol=4)])
def test_arrays_lists_dicts_round_trip(writer):
    data = {b"data": np.arange(12, dtype=np.uint8).reshape(2, 6), b"labels": [3, 7],
            b"f": np.linspace(0, 1, 5, dtype=np.float32), b"name": b"batch", b"empty": b""}
    out = load_data_pickle(writer(data), "ok")
    assert set(out) == set(data)
    np.testing.assert_array_equal(out[b"data"], data[b"data"])
    assert out[b"data"].dtype == np.uint8
    np.testing.assert_array_equal(out[b"f"], data[b"f"])
    assert out[b"labels"] == [3, 7] and out[b"name"] == b"batch" and out[b"empty"] == b""


def test_py2_writer_is_byte_identical_to_the_real_python2_mnist_pickle():
    """The CIFAR test files come from this writer: check it against a real Python 2 pickle."""
    f = resources.files("mnist") / "data/mnist.pkl.gz"
    with f.open("rb") as raw_file, gzip.open(raw_file) as handle:
        raw = handle.read()
    obj = load_data_pickle(raw, "mnist.pkl.gz")
    assert py2_pickle(obj) == raw


@pytest.mark.parametrize("payload", [b"", b"\x80\x02}q\x01(U\x04data", b"not a pickle at all", b"\x80\x02K\x01K\x02"])
def test_truncated_or_garbage_is_corrupt(payload):
    with pytest.raises(CorruptFileError):
        load_data_pickle(payload, "bad")


def test_truncated_real_format_is_corrupt():
    payload = py2_pickle({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]})
    with pytest.raises(CorruptFileError):
        load_data_pickle(payload[: len(payload) // 2], "half")
