"""Writers of small data files in the exact official on-disk formats (test helpers)."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_PY2_GLOBALS = {
    id(_RECONSTRUCT): b"numpy.core.multiarray\n_reconstruct\n",
    id(np.ndarray): b"numpy\nndarray\n",
    id(np.dtype): b"numpy\ndtype\n",
}


class Py2Pickler(pickle._Pickler):
    """Writes pickles as Python 2's cPickle did (protocol 2).

    ``bytes`` and ``str`` become Python 2 ``str`` (SHORT_BINSTRING/BINSTRING), numpy
    globals use their numpy-1 module names, dtypes reduce with ``(code, 0, 1)`` and the
    memo starts at 1, so a tuple of arrays comes out byte-identical to the classic
    ``mnist.pkl.gz``; CIFAR's ``data_batch_*`` files were written the same way.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file, top=None):
        super().__init__(file, protocol=2)
        self.top = top  # the object being dumped: a temporary in the writing script, never memoized
        self._anchor = object()
        self.memo[id(self._anchor)] = (0, self._anchor)  # cPickle's memo ids started at 1

    def _save_py2_str(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)

    def _save_tuple(self, obj):
        if not obj:
            self.write(pickle.EMPTY_TUPLE)
            return
        if len(obj) <= 3:
            for element in obj:
                self.save(element)
            self.write(pickle._tuplesize2code[len(obj)])
        else:
            self.write(pickle.MARK)
            for element in obj:
                self.save(element)
            self.write(pickle.TUPLE)
        if _holds_data(obj) and obj is not self.top:
            self.memoize(obj)

    # cPickle memoized only objects referenced elsewhere (refcount > 1): the user's
    # containers, never the strings and tuples built for a reduce.
    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str
    dispatch[tuple] = _save_tuple

    def save_global(self, obj, name=None):
        if id(obj) in _PY2_GLOBALS:
            self.write(pickle.GLOBAL + _PY2_GLOBALS[id(obj)])
            self.memoize(obj)
            return
        super().save_global(obj, name)

    def reducer_override(self, obj):
        if isinstance(obj, np.dtype):
            rv = obj.__reduce__()
            return (np.dtype, (rv[1][0], 0, 1), rv[2])
        return NotImplemented


def _holds_data(obj) -> bool:
    return any(isinstance(e, (np.ndarray, list, dict)) or (isinstance(e, tuple) and _holds_data(e)) for e in obj)


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, top=obj).dump(obj)
    return buf.getvalue()


# ----------------------------------------------------------------- CIFAR

def cifar_batch(rng: np.random.Generator, n: int, num_classes: int, fine: bool = False) -> dict:
    """A batch dict as in the official files (keys are Python 2 str = bytes)."""
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, num_classes, size=n)]
    batch = {b"batch_label": b"training batch 1 of 5", b"data": data,
             b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    if fine:
        batch[b"fine_labels"] = labels
        batch[b"coarse_labels"] = [v % 20 for v in labels]
    else:
        batch[b"labels"] = labels
    return batch


def write_cifar10(root: Path, per_batch: int = 20, n_test: int = 30, seed: int = 0,
                  writer=py2_pickle) -> dict[str, dict]:
    """``root/cifar-10-batches-py/`` with data_batch_1..5, test_batch, batches.meta."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": cifar_batch(rng, per_batch, 10) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(rng, n_test, 10)
    for name, batch in batches.items():
        (folder / name).write_bytes(writer(batch))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(writer({b"label_names": names, b"num_cases_per_batch": per_batch,
                                                  b"num_vis": 3072}))
    return batches


def write_cifar100(root: Path, n_train: int = 100, n_test: int = 40, seed: int = 1) -> dict[str, dict]:
    """``root/cifar-100-python/`` with train, test, meta (fine and coarse labels)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    parts = {"train": cifar_batch(rng, n_train, 100, fine=True), "test": cifar_batch(rng, n_test, 100, fine=True)}
    for name, batch in parts.items():
        (folder / name).write_bytes(py2_pickle(batch))
    meta = {b"fine_label_names": [f"class{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"super{i}".encode() for i in range(20)]}
    (folder / "meta").write_bytes(py2_pickle(meta))
    return parts


def tar_gz(folder: Path, out: Path) -> Path:
    """Pack ``folder`` as the official archives are (top-level folder name kept)."""
    with tarfile.open(out, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return out


def cifar_images(batch: dict) -> np.ndarray:
    return batch[b"data"].reshape(-1, 3, 32, 32)


# ----------------------------------------------------------------- idx (MNIST)

def idx_bytes(arr: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
             np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}
    header = bytes([0, 0, codes[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(arr)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist_idx(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = False,
                    seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", x, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y, gz)
        out[prefix] = (x, y)
    return out


# ----------------------------------------------------------------- SVHN

def svhn_arrays(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """X (32, 32, 3, N) uint8 and y (N, 1) uint8 in 1..10 (10 = digit 0), as in the .mat files."""
    x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
    y[:2, 0] = 10  # make sure the 10 -> 0 case is present
    return x, y


def write_svhn(folder: Path, sizes: dict[str, int], seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for role, n in sizes.items():
        x, y = svhn_arrays(rng, n)
        savemat(folder / f"{role}_32x32.mat", {"X": x, "y": y})
        out[role] = (x, y)
    return out


def write_mat73(path: Path, variables: dict[str, np.ndarray]) -> None:
    """A MATLAB v7.3 file: HDF5 with a 512-byte MATLAB header, arrays stored transposed."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        for key, value in variables.items():
            f.create_dataset(key, data=np.ascontiguousarray(value.T))
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")


# ----------------------------------------------------------------- images, h5, npz

def write_png(path: Path, arr: np.ndarray) -> None:
    """(H, W) or (H, W, 3) uint8 -> PNG."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def write_csaw_h5(path: Path, data: np.ndarray, label: np.ndarray, **attrs) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("label", data=label)
        for key, value in attrs.items():
            f.attrs[key] = value
    return path


def write_blank_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit grayscale PNG of any size, written row by row (a 12000x12000 one is ~20 KB).

    Nothing the size of the image is ever held in memory: the zlib stream of blank
    rows is produced in chunks, so tests can craft "decompression bombs" cheaply.
    """
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte "none", then the packed bits
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row * min(1024, height - start)) for start in range(0, height, 1024))
    idat += deflate.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def write_gz_stream(path: Path, head: bytes, zeros: int) -> Path:
    """``head`` followed by ``zeros`` zero bytes, gzip-compressed without holding them in memory."""
    with gzip.open(path, "wb") as out:
        out.write(head)
        block = bytes(1024**2)
        for start in range(0, zeros, len(block)):
            out.write(block[: min(len(block), zeros - start)])
    return path
