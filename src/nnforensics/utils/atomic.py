"""Atomic file output: write to a temporary sibling, fsync, then rename.

An interrupted write never leaves a half-written file at the destination, and an
existing file is replaced only once the new one is complete.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError, FileClobberError

TMP_PREFIX = ".nnf-tmp-"


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (best effort: not every OS/filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success it is renamed to ``dest``.

    The caller writes the complete file at the yielded path (by any library). If the
    block raises (or the process is interrupted: KeyboardInterrupt, or SIGTERM under
    the CLI) the temporary file is removed and ``dest`` is untouched. After SIGKILL a
    ``.nnf-tmp-*`` file may remain, but ``dest`` is never half-written. The new file
    gets ``dest``'s old permissions, or the usual ones (0o666 minus the umask).
    """
    dest = Path(dest)
    if dest.is_dir():
        raise ConfigError(f"output path {str(dest)!r} is a directory; give a file name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # The name is chosen before the file exists, so an interrupt at any point after
    # its creation is inside the try block below (tempfile.mkstemp leaves a window).
    # 64 random bits: a clash with another writer's name is not a practical concern.
    tmp_path = dest.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}{dest.suffix}"
    try:
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        except OSError as err:  # name the destination, not the temporary file
            raise OSError(err.errno, f"cannot write {str(dest)!r}: {err.strerror}") from None
        mode = os.fstat(fd).st_mode & 0o7777  # what a plain open() gives here
        os.close(fd)
        yield tmp_path
        with open(tmp_path, "rb") as handle:
            os.fsync(handle.fileno())
        # Some writers (safetensors) replace the file with a private 0o600 one: reset it.
        os.chmod(tmp_path, dest.stat().st_mode & 0o7777 if dest.exists() else mode)
        os.replace(tmp_path, dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(dest: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``dest`` atomically."""
    atomic_write_bytes(dest, text.encode("utf-8"))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_not_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> None:
    """Refuse an output path that is one of the inputs (same path, symlink or hard link)."""
    out = Path(output)
    for item in inputs:
        if item is None:
            continue
        src = Path(item)
        if out.resolve() == src.resolve() or _same_file(out, src):
            raise FileClobberError(
                f"output path {str(output)!r} is also an input; choose another output so the input is kept"
            )
