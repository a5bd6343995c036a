"""Untrusted HDF5 files (issue 9, findings 6, 8, 10): nothing read from other files, sizes checked first.

Every crafted file is written here with h5py; the "secret" an attacker would like to
read is a file the test writes too.
"""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest

from nnforensics.data import load_dataset
from nnforensics.errors import CorruptFileError, DataError, UnsafeFileError
from nnforensics.io.h5safe import get_dataset, iter_datasets, open_h5, read_dataset

SECRET = bytes(range(256)) * 8  # 2048 bytes, recognisable: 0, 1, 2, ...
SHAPE = (2, 1, 28, 28)  # fits the tiny LeNet of tests/conftest.py


def _secret_file(tmp_path):
    path = tmp_path / "secret.bin"
    path.write_bytes(SECRET)
    return path


def _plain(path, data=None):
    data = np.zeros(SHAPE, np.uint8) if data is None else data
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("label", data=np.arange(len(data)) % 2)
    return path


def external_storage_file(tmp_path):
    """'data' whose bytes are the first 1568 bytes of a file outside the .h5."""
    path = tmp_path / "external_storage.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", shape=SHAPE, dtype="u1",
                         external=[(str(_secret_file(tmp_path)), 0, int(np.prod(SHAPE)))])
        f.create_dataset("label", data=[0, 1])
    return path


def external_link_file(tmp_path, target_exists=True):
    """'data' is an external link to a dataset of another file (or to a file that is not there)."""
    other = _plain(tmp_path / "other.h5", np.full(SHAPE, 7, np.uint8))
    path = tmp_path / "external_link.h5"
    with h5py.File(path, "w") as f:
        f["data"] = h5py.ExternalLink(str(other if target_exists else tmp_path / "missing.h5"), "data")
        f.create_dataset("label", data=[0, 1])
    return path


def virtual_file(tmp_path):
    """'data' is a virtual dataset mapped from another file."""
    other = _plain(tmp_path / "source.h5", np.full(SHAPE, 9, np.uint8))
    path = tmp_path / "virtual.h5"
    with h5py.File(path, "w") as f:
        layout = h5py.VirtualLayout(shape=SHAPE, dtype="u1")
        layout[:] = h5py.VirtualSource(str(other), "data", shape=SHAPE)
        f.create_virtual_dataset("data", layout)
        f.create_dataset("label", data=[0, 1])
    return path


def huge_declared_file(tmp_path):
    """'data' declares 3 * 2**60 bytes; the file is a few KB (nothing was ever written)."""
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", shape=(2**20, 3, 2**20, 2**20), dtype="u1")
        f.create_dataset("label", data=[0, 1])
    return path


def test_external_storage_is_refused_and_its_bytes_never_returned(tmp_path):
    path = external_storage_file(tmp_path)
    with h5py.File(path, "r") as f:  # the attack works with plain h5py: the secret comes back as pixels
        assert f["data"][()].tobytes() == SECRET[: int(np.prod(SHAPE))]
    with pytest.raises(UnsafeFileError, match=r"external_storage\.h5.*'/data'.*external storage"):
        load_dataset(f"h5:{path}", "all")


@pytest.mark.parametrize("target_exists", [True, False])
def test_external_links_are_refused_before_being_followed(tmp_path, target_exists):
    path = external_link_file(tmp_path, target_exists)
    with pytest.raises(UnsafeFileError, match=r"'data' is an external link to 'data' in file .*other|missing"):
        load_dataset(f"h5:{path}", "all")


def test_virtual_datasets_are_refused(tmp_path):
    path = virtual_file(tmp_path)
    with pytest.raises(UnsafeFileError, match=r"virtual dataset mapped from .*source\.h5"):
        load_dataset(f"h5:{path}", "all")


def test_huge_declared_dataset_is_refused_before_reading(tmp_path):
    path = huge_declared_file(tmp_path)
    with pytest.raises(DataError, match=r"huge\.h5.*'data' \(1048576, 3, 1048576, 1048576\).*NNF_MAX_DATA_BYTES"):
        load_dataset(f"h5:{path}", "all")


def test_dataset_over_the_bound_is_refused(tmp_path, monkeypatch):
    path = _plain(tmp_path / "big.h5", np.zeros((50, 3, 55, 47), np.uint8))  # 387,750 bytes, really stored
    monkeypatch.setenv("NNF_MAX_DATA_BYTES", "100K")
    with pytest.raises(DataError, match=r"big\.h5.*more than the 100\.0 KiB allowed.*NNF_MAX_DATA_BYTES"):
        load_dataset(f"h5:{path}", "all")
    monkeypatch.setenv("NNF_MAX_DATA_BYTES", "1M")
    assert len(load_dataset(f"h5:{path}", "all")) == 50


def test_unwritten_dataset_is_corrupt_not_fill_values(tmp_path):
    path = tmp_path / "unwritten.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", shape=SHAPE, dtype="u1")  # declared, never written: HDF5 would return zeros
        f.create_dataset("label", data=[0, 1])
    with pytest.raises(CorruptFileError, match=r"'/data' declares shape \(2, 1, 28, 28\).*stores only 0 bytes"):
        load_dataset(f"h5:{path}", "all")


def test_soft_links_inside_the_file_work_but_not_through_an_external_link(tmp_path):
    other = _plain(tmp_path / "other.h5")
    path = tmp_path / "soft.h5"
    data = np.arange(np.prod(SHAPE), dtype=np.uint8).reshape(SHAPE) % 200
    with h5py.File(path, "w") as f:
        f.create_dataset("stored/pixels", data=data)
        f["data"] = h5py.SoftLink("/stored/pixels")
        f.create_dataset("label", data=[0, 1])
        f["ext"] = h5py.ExternalLink(str(other), "/")
        f["sneaky"] = h5py.SoftLink("/ext/data")
    np.testing.assert_array_equal(load_dataset(f"h5:{path}", "all").x.numpy(), data)
    with open_h5(path) as f, pytest.raises(UnsafeFileError, match="'sneaky' is an external link"):
        get_dataset(f, "sneaky", "soft.h5")


def test_iter_datasets_checks_every_link_and_survives_hard_link_cycles(tmp_path):
    path = tmp_path / "tree.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("a/w", data=np.ones(3))
        f.create_dataset("b/w", data=np.zeros(2))
        f["a/loop"] = f["a"]  # a hard link from a group to itself
        f["b/alias"] = f["a/w"]
    with open_h5(path) as f:
        assert sorted(name for name, _ in iter_datasets(f, "tree.h5")) == ["/a/w", "/b/w"]
    with h5py.File(path, "a") as f:
        f["b/far"] = h5py.ExternalLink(str(_plain(tmp_path / "o.h5")), "data")
    with open_h5(path) as f, pytest.raises(UnsafeFileError, match="'far' is an external link"):
        list(iter_datasets(f, "tree.h5"))


def test_read_dataset_refuses_variable_length_and_names_the_bound(tmp_path):
    path = tmp_path / "types.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("names", data=["a", "bb"], dtype=h5py.string_dtype())
        f.create_dataset("w", data=np.ones((4, 4), np.float32))
    with open_h5(path) as f:
        with pytest.raises(DataError, match="variable-length"):
            read_dataset(get_dataset(f, "names", "types.h5"), "types.h5", 10**6)
        with pytest.raises(DataError, match="64 bytes, more than the 63 allowed"):
            read_dataset(get_dataset(f, "w", "types.h5"), "types.h5", 63)
        assert read_dataset(get_dataset(f, "w", "types.h5"), "types.h5", 64).shape == (4, 4)


def test_unreadable_file_is_corrupt(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(CorruptFileError, match=r"bad\.h5.*not a readable HDF5 file"), open_h5(bad):
        pass


@pytest.mark.parametrize("make, expected", [
    (external_storage_file, "external storage"),
    (lambda p: external_link_file(p, target_exists=False), "external link"),
    (virtual_file, "virtual dataset"),
    (huge_declared_file, "NNF_MAX_DATA_BYTES"),
])
def test_cli_exit_1_with_one_line(tmp_path, run_cli, tiny_model_file, make, expected):
    path = make(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_cli("eval", tiny_model_file, "--data", f"h5:{path}", "--split", "all")
    lines = result.err.strip().splitlines()
    assert result.code == 1 and len(lines) == 1, result.err
    assert lines[0].startswith("error:") and expected in lines[0] and "internal error" not in lines[0]
    assert "out of memory" not in lines[0] and not caught


def test_memory_error_while_reading_names_the_file(tmp_path, run_cli, tiny_model_file, monkeypatch):
    import nnforensics.data.hdf5 as hdf5

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(hdf5, "as_pixels", no_memory)
    path = _plain(tmp_path / "fine.h5")
    with pytest.raises(DataError, match=r"fine\.h5.*not enough memory"):
        load_dataset(f"h5:{path}", "all")
    result = run_cli("eval", tiny_model_file, "--data", f"h5:{path}", "--split", "all")
    assert result.code == 1 and "fine.h5" in result.err and "--batch-size" not in result.err


def test_read_attr_checks_the_declared_size(tmp_path):
    from nnforensics.io.h5safe import read_attr

    path = tmp_path / "attrs.h5"
    with h5py.File(path, "w") as f:
        f.attrs["small"] = 3
        f.attrs["big"] = np.zeros(1000)
    with open_h5(path) as f:
        assert read_attr(f, "small", "attrs.h5", 8) == 3 and read_attr(f, "absent", "attrs.h5", 8) is None
        with pytest.raises(DataError, match="attribute 'big' of '/'.*8,000 bytes, more than the 100 allowed"):
            read_attr(f, "big", "attrs.h5", 100)


# ---------------------------------------------------------------- filtered datasets (review of issue 9)

def _chunked(tmp_path, name, written, **filters):
    """'data' of SHAPE_40 in 10 chunks through ``filters``; only the first ``written`` samples are stored."""
    path = tmp_path / f"{name}.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("data", shape=SHAPE_40, dtype="u1", chunks=(4, 1, 28, 28), **filters)
        if written:
            ds[:written] = np.arange(written * 784, dtype=np.uint32).reshape(written, 1, 28, 28) % 251
        f.create_dataset("label", data=np.arange(SHAPE_40[0]) % 2)
    return path


SHAPE_40 = (40, 1, 28, 28)
FILTERS = {"lzf": {"compression": "lzf"}, "gzip": {"compression": "gzip"},
           "shuffle+gzip": {"shuffle": True, "compression": "gzip", "fletcher32": True}, "none": {}}


@pytest.mark.parametrize("written", [0, 4])
@pytest.mark.parametrize("filters", sorted(FILTERS))
def test_chunks_never_written_are_refused_whatever_the_filters(tmp_path, filters, written):
    """Review: an LZF dataset whose chunks were never written was read as fill values (20,000 images
    from a 162 KB file); deflate's ratio check let a partly written dataset through too."""
    path = _chunked(tmp_path, filters, written, **FILTERS[filters])
    with pytest.raises(CorruptFileError, match=rf"'/data' declares shape \(40, 1, 28, 28\) in 10 chunks of "
                                               rf"\(4, 1, 28, 28\), but the file stores only {written // 4} of them"):
        load_dataset(f"h5:{path}", "all")


@pytest.mark.parametrize("filters", sorted(FILTERS))
def test_fully_written_filtered_datasets_are_read(tmp_path, filters):
    data = load_dataset(f"h5:{_chunked(tmp_path, filters, 40, **FILTERS[filters])}", "all")
    assert data.x.shape == (40, 1, 28, 28) and int(data.x[1, 0, 0, 0]) == 784 % 251  # uint8, as stored


def test_filters_of_unbounded_ratio_are_refused(tmp_path):
    """scaleoffset packs a constant chunk into a few bits per value: its ratio has no useful bound."""
    path = tmp_path / "so.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.zeros(SHAPE_40, "i4"), chunks=(4, 1, 28, 28), scaleoffset=0)
        f.create_dataset("label", data=np.arange(40) % 2)
    with pytest.raises(UnsafeFileError, match=r"so\.h5.*'/data' is stored through HDF5 filter 'scaleoffset' "
                                              r"\(id 6\).*cannot bound"):
        load_dataset(f"h5:{path}", "all")


def test_cli_unwritten_lzf_dataset_is_one_line_exit_1(tmp_path, run_cli, tiny_model_file):
    result = run_cli("eval", tiny_model_file, "--data", f"h5:{_chunked(tmp_path, 'lzf', 0, compression='lzf')}",
                     "--split", "all")
    lines = result.err.strip().splitlines()
    assert result.code == 1 and len(lines) == 1 and "stores only 0 of them" in lines[0], result.err
