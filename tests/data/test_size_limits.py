"""Data files that declare or decompress to more than they should (issue 9, findings 8 and 12).

Each file is crafted here. Bombs stay small: the bound is lowered through
NNF_MAX_DATA_BYTES, or the file only *declares* a huge size, so no test allocates
more than a few megabytes; tracemalloc shows that nothing was decompressed whole.
"""

from __future__ import annotations

import gzip
import struct
import tracemalloc
import warnings

import numpy as np
import pytest
from datafmt import idx_bytes, tar_gz, write_blank_png, write_cifar10, write_gz_stream, write_mnist_idx, write_png

from nnforensics.data import DataWarning, load_dataset
from nnforensics.io.limits import DEFAULT_MAX_DATA_BYTES, max_data_bytes
from nnforensics.data.safe_pickle import load_data_pickle
from nnforensics.data.validate import library_warnings
from nnforensics.errors import ConfigError, CorruptFileError, DataError

MB = 1024**2


def _peak_bytes(fn) -> int:
    """Peak Python + numpy memory allocated while ``fn()`` runs (it may raise)."""
    tracemalloc.start()
    try:
        fn()
    except Exception:  # noqa: BLE001 - the caller checks the error separately
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def _idx_header(dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


# ----------------------------------------------------------------- the bound itself

@pytest.mark.parametrize("raw, expected", [("", DEFAULT_MAX_DATA_BYTES), ("512", 512), ("8G", 8 * 1024**3),
                                           ("100 KiB", 100 * 1024), ("3mb", 3 * MB), ("1.5G", 3 * 1024**3 // 2),
                                           ("0.5 MiB", MB // 2), (".25k", 256)])
def test_bound_from_environment(monkeypatch, raw, expected):
    monkeypatch.setenv("NNF_MAX_DATA_BYTES", raw)
    assert max_data_bytes() == expected


@pytest.mark.parametrize("raw", ["0", "-5", "lots", "0.1", "1.5.2G", "1e9"])
def test_bad_bound_is_a_config_error(monkeypatch, raw):
    monkeypatch.setenv("NNF_MAX_DATA_BYTES", raw)
    with pytest.raises(ConfigError, match="NNF_MAX_DATA_BYTES"):
        max_data_bytes()


# ----------------------------------------------------------------- idx (.gz)

def test_idx_gz_declaring_a_huge_size_is_refused(tmp_path):
    write_mnist_idx(tmp_path, 12, 5, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_header((60000, 100000, 100000)) + bytes(1000)))
    with pytest.raises(DataError, match=r"t10k-images.*shape \(60000, 100000, 100000\).*NNF_MAX_DATA_BYTES"):
        load_dataset(f"mnist:{tmp_path}", "test")


def test_idx_gz_declaring_more_than_its_bytes_can_hold_is_corrupt(tmp_path):
    write_mnist_idx(tmp_path, 12, 5, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_header((1000, 1000, 1000)) + bytes(1000)))  # 1 GB from ~60 bytes
    with pytest.raises(CorruptFileError, match="more than .* of compressed data can hold"):
        load_dataset(f"mnist:{tmp_path}", "test")


def test_idx_gz_over_the_bound_is_refused_before_decompressing(tmp_path, monkeypatch):
    write_mnist_idx(tmp_path, 12, 5, gz=True)
    n = 4 * MB // 784  # a consistent file: header and 4 MB of real (zero) pixels
    write_gz_stream(tmp_path / "t10k-images-idx3-ubyte.gz", _idx_header((n, 28, 28)), n * 784)
    monkeypatch.setenv("NNF_MAX_DATA_BYTES", "1M")
    spec = f"mnist:{tmp_path}"
    with pytest.raises(DataError, match=r"would decode to 4\.0 MiB, more than the 1\.0 MiB allowed"):
        load_dataset(spec, "test")
    assert _peak_bytes(lambda: load_dataset(spec, "test")) < MB


def test_idx_gz_holding_more_than_declared_is_refused_without_reading_it_all(tmp_path):
    write_mnist_idx(tmp_path, 12, 5, gz=True)
    path = write_gz_stream(tmp_path / "t10k-images-idx3-ubyte.gz", idx_bytes(np.zeros((5, 28, 28), np.uint8)),
                           32 * MB)  # 32 MB of trailing data in a ~32 KB file
    spec = f"mnist:{tmp_path}"
    with pytest.raises(CorruptFileError, match="holds more data than the 3920 bytes its header promises"):
        load_dataset(spec, "test")
    assert path.stat().st_size < MB and _peak_bytes(lambda: load_dataset(spec, "test")) < 4 * MB


# ----------------------------------------------------------------- npz

def test_npz_member_decompressing_past_the_bound_is_refused_before_loading(tmp_path, monkeypatch):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((200, 1, 100, 100), np.uint8), y=np.zeros(200, np.int64))  # 2 MB -> ~3 KB
    monkeypatch.setenv("NNF_MAX_DATA_BYTES", "1M")
    spec = f"npz:{path}"
    with pytest.raises(DataError, match=r"bomb\.npz.*2 arrays.*more than the 1\.0 MiB allowed.*NNF_MAX_DATA_BYTES"):
        load_dataset(spec, "all")
    assert path.stat().st_size < 64 * 1024 and _peak_bytes(lambda: load_dataset(spec, "all")) < MB


def test_npy_header_that_does_not_match_its_member_is_corrupt(tmp_path):
    import zipfile

    header = np.lib.format.header_data_from_array_1_0(np.zeros((1000, 1000, 1000), np.uint8))
    buf = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", buf.getvalue() + bytes(100))  # declares 1 GB, holds 100 bytes
        archive.writestr("y.npy", buf.getvalue())
    with pytest.raises(CorruptFileError, match=r"'x\.npy'.*declares shape \(1000, 1000, 1000\).*holds 100"):
        load_dataset(f"npz:{path}", "all")


# ----------------------------------------------------------------- images

def test_huge_png_is_refused_from_its_header_without_raw_warnings(tmp_path):
    for cls in ("a", "b"):
        for k in range(3):
            write_png(tmp_path / cls / f"{k}.png", np.zeros((8, 8), np.uint8))
    bomb = write_blank_png(tmp_path / "a" / "bomb.png", 12000, 12000)  # 144 megapixels in ~18 KB
    spec = f"imagefolder:{tmp_path}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would fail here
        with pytest.raises(DataError, match=r"bomb\.png.*12000x12000 \(144,000,000 pixels\).*MAX_IMAGE_PIXELS"):
            load_dataset(spec, "all")
    assert bomb.stat().st_size < 64 * 1024 and _peak_bytes(lambda: load_dataset(spec, "all")) < 4 * MB


def test_png_past_pillows_hard_limit_is_a_data_error(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 2x this raises DecompressionBombError in Image.open
    write_blank_png(tmp_path / "a" / "big.png", 100, 100)
    with pytest.raises(DataError, match=r"big\.png.*too large to decode safely"):
        load_dataset(f"imagefolder:{tmp_path}", "all")


def test_the_pixel_limit_can_be_raised_from_the_environment(tmp_path, monkeypatch):
    """Review of issue 9: the error said "raise that limit" but no option or variable could."""
    from PIL import Image

    from nnforensics.data.imagefolder import max_image_pixels

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for cls in ("a", "b"):
        write_png(tmp_path / cls / "0.png", np.zeros((40, 60), np.uint8))  # 2,400 pixels
    spec = f"imagefolder:{tmp_path}"
    with pytest.raises(DataError, match=r"0\.png.*too large.*allow more with NNF_MAX_IMAGE_PIXELS=N"):
        load_dataset(spec, "all")
    monkeypatch.setenv("NNF_MAX_IMAGE_PIXELS", "2000")  # Pillow's own check follows it: 2,400 < 2 x 2,000
    with pytest.raises(DataError, match=r"60x40 \(2,400 pixels\), more than the 2,000 .*NNF_MAX_IMAGE_PIXELS"):
        load_dataset(spec, "all")
    monkeypatch.setenv("NNF_MAX_IMAGE_PIXELS", "2_400")
    assert load_dataset(spec, "all").x.shape == (2, 1, 40, 60)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored
    monkeypatch.setenv("NNF_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ConfigError, match="NNF_MAX_IMAGE_PIXELS='lots' is not a positive number of pixels"):
        max_image_pixels()


def test_decoded_tree_over_the_bound_is_refused_before_decoding(tmp_path, monkeypatch):
    for cls in ("a", "b", "c"):
        for k in range(3):
            write_png(tmp_path / cls / f"{k}.png", np.zeros((10, 12, 3), np.uint8))
    monkeypatch.setenv("NNF_MAX_DATA_BYTES", "2000")
    with pytest.raises(DataError, match=r"9 images of 3x10x12 would decode to 3\.2 KiB, more than"):
        load_dataset(f"imagefolder:{tmp_path}", "all")


def test_library_warnings_become_one_data_warning():
    with pytest.warns(DataWarning) as record:
        with library_warnings("tree 'x'"):
            warnings.warn("first odd thing", UserWarning)
            warnings.warn("second", RuntimeWarning)
    assert len(record) == 1
    assert str(record[0].message) == "tree 'x': the decoder warned: UserWarning: first odd thing (and 1 more)"


# ----------------------------------------------------------------- CIFAR, pickles, SVHN

def test_cifar_archive_members_over_the_bound_are_refused_before_reading(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "src", per_batch=20, n_test=10)  # 61 KB per training batch
    archive = tar_gz(tmp_path / "src" / "cifar-10-batches-py", tmp_path / "cifar-10-python.tar.gz")
    monkeypatch.setenv("NNF_MAX_DATA_BYTES", "100K")
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz.*members up to .*data_batch_2.*NNF_MAX"):
        load_dataset(f"cifar10:{archive}", "train")


def test_pickle_cannot_make_numpy_allocate_a_declared_shape():
    # _reconstruct(numpy.ndarray, (10**9,), b"b") without data: a 1 GB array from 60 bytes of pickle
    payload = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
               + b"J" + struct.pack("<i", 10**9) + b"\x85U\x01b\x87R.")
    with pytest.raises(CorruptFileError, match=r"shape \(1000000000,\)"):
        load_data_pickle(payload, "crafted")


def test_compressed_mat_over_the_bound_is_refused_before_loadmat(tmp_path, monkeypatch):
    from scipy.io import savemat

    x, y = np.zeros((32, 32, 3, 300), np.uint8), np.ones((300, 1), np.uint8)  # 921 KB -> a few KB
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y}, do_compression=True)
    monkeypatch.setenv("NNF_MAX_DATA_BYTES", "500K")
    spec = f"svhn:{tmp_path}"
    with pytest.raises(DataError, match=r"test_32x32\.mat.*variables.*more than the 500\.0 KiB allowed"):
        load_dataset(spec, "test")
    assert _peak_bytes(lambda: load_dataset(spec, "test")) < 2 * MB
    monkeypatch.setenv("NNF_MAX_DATA_BYTES", "2M")
    assert len(load_dataset(spec, "test")) == 300


def test_mat73_external_storage_is_refused(tmp_path):
    import h5py

    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(range(256)) * 12)
    with h5py.File(tmp_path / "test_32x32.mat", "w") as f:
        f.create_dataset("X", shape=(1, 3, 32, 32), dtype="u1", external=[(str(secret), 0, 3072)])
        f.create_dataset("y", data=np.ones((1, 1)))
    with pytest.raises(Exception, match="external storage") as err:
        load_dataset(f"svhn:{tmp_path}", "test")
    assert type(err.value).__name__ == "UnsafeFileError"


# ----------------------------------------------------------------- the command line

def _one_error_line(result) -> str:
    lines = result.err.strip().splitlines()
    assert result.code == 1 and len(lines) == 1, result.err
    assert lines[0].startswith("error:") and "internal error" not in lines[0] and "Warning" not in lines[0]
    return lines[0]


def test_cli_huge_png_is_one_error_line_and_no_warnings(tmp_path, run_cli, tiny_model_file):
    for digit in range(10):
        write_png(tmp_path / str(digit) / "a.png", np.zeros((28, 28), np.uint8))
    write_blank_png(tmp_path / "3" / "bomb.png", 12000, 12000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _one_error_line(run_cli("eval", tiny_model_file, "--data", f"imagefolder:{tmp_path}",
                                       "--split", "all"))
    assert "bomb.png" in line and "12000x12000" in line and not caught


@pytest.mark.parametrize("kind", ["idx", "npz"])
def test_cli_bombs_are_one_error_line(tmp_path, run_cli, tiny_model_file, monkeypatch, kind):
    if kind == "idx":
        write_mnist_idx(tmp_path, 12, 5, gz=True)
        write_gz_stream(tmp_path / "t10k-images-idx3-ubyte.gz", _idx_header((5000, 28, 28)), 5000 * 784)
        spec = f"mnist:{tmp_path}"
    else:
        path = tmp_path / "bomb.npz"
        np.savez_compressed(path, x=np.zeros((5000, 1, 28, 28), np.uint8), y=np.arange(5000) % 10)
        spec = f"npz:{path}"
    monkeypatch.setenv("NNF_MAX_DATA_BYTES", "1M")
    line = _one_error_line(run_cli("eval", tiny_model_file, "--data", spec, "--split", "test"))
    assert "NNF_MAX_DATA_BYTES" in line
