"""A resumable sweep: a configuration, a list of cells, one function, tidy rows on disk.

Layout of a results directory::

    RESULTS_DIR/
      config.json                 the sweep's configuration (refuses to mix configurations)
      cells.json                  the cells, in order: [{"cell_id", "params"}, ...]
      cells/<cell_id>.parquet     rows of one finished cell (written atomically, last)
      cells/<cell_id>.<t>.parquet rows of the cell's extra table ``t`` (written before the above)
      cells/<cell_id>.npz         the cell's arrays, if any
      failures/<cell_id>.json     why a cell failed (removed once it succeeds)
      results.parquet / .csv      every finished cell's rows, in cell order (consolidated)
      <t>.parquet                 every finished cell's rows of extra table ``t``

A cell is finished exactly when ``cells/<cell_id>.parquet`` exists, so a sweep killed
at any moment loses at most the cells in flight, and running it again computes only
the missing ones.

Failures: a cell that raises is recorded in ``failures/`` with its traceback and the
sweep goes on with the other cells; the summary lists the failures
(:meth:`SweepSummary.raise_for_failures`) and the next run retries them.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, CorruptFileError, NNFError
from ..io.jsonfile import read_json
from ..utils.atomic import TMP_PREFIX, atomic_path, atomic_write_text
from ..utils.progress import progress

CONFIG_FILE = "config.json"
CELLS_FILE = "cells.json"
CELLS_DIR = "cells"
FAILURES_DIR = "failures"
RESULTS_TABLE = "results"
EXECUTORS = ("local", "ray")

#: ``fn(config, cell) -> rows``: a dict, a list of dicts, or a :class:`CellResult`.
CellFn = Callable[[dict[str, Any], dict[str, Any]], Any]

_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SweepFailedError(NNFError):
    """Some cells of a sweep raised; the others were saved."""


@dataclass
class CellResult:
    """What one cell produced.

    Attributes:
        rows: tidy rows of the main table (``results``); each row gets the cell's
            ``cell_id`` unless it sets its own (e.g. one id per method).
        tables: extra tables, ``{name: rows}`` (e.g. per-group results).
        arrays: arrays saved as ``cells/<cell_id>.npz`` (e.g. heatmaps).
    """

    rows: list[dict[str, Any]]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def as_cell_result(output: Any) -> CellResult:
    """Accept ``dict``, ``list[dict]`` or :class:`CellResult` from a cell function."""
    if isinstance(output, CellResult):
        result = output
    elif isinstance(output, Mapping):
        result = CellResult([dict(output)])
    elif isinstance(output, Sequence) and not isinstance(output, (str, bytes)) and all(
            isinstance(row, Mapping) for row in output):
        result = CellResult([dict(row) for row in output])
    else:
        raise TypeError(f"a cell function must return a dict, a list of dicts or a CellResult, "
                        f"got {type(output).__name__}")
    for name in result.tables:
        if not _TABLE_NAME.match(name) or name == RESULTS_TABLE:
            raise ValueError(f"invalid extra table name {name!r} (lowercase identifier, not 'results')")
    return result


@dataclass
class CellOutcome:
    """A cell's result, or why it failed (what executors hand back to the driver)."""

    result: CellResult | None
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


# ----------------------------------------------------------------- cell ids

def canonical_json(value: Any) -> str:
    """Stable JSON (sorted keys, no spaces) of a JSON-serialisable value."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"sweep configurations and cells must be JSON-serialisable (finite numbers, "
                          f"strings, lists, dicts): {err}") from None


def make_cell_id(params: Mapping[str, Any]) -> str:
    """A readable, stable id: ``key=value_...`` (sanitised, cut at 80 chars) + a 10-hex hash.

    The hash covers the exact parameters, so different cells never share an id.
    """
    slug = "_".join(f"{k}={v}" for k, v in sorted(params.items()))
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "", slug.replace(" ", ""))[:80]
    digest = hashlib.sha256(canonical_json(dict(params)).encode()).hexdigest()[:10]
    return f"{slug}-{digest}" if slug else digest


# ----------------------------------------------------------------- the results directory

def _identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The keys that identify a sweep; keys starting with ``_`` only say where things are
    (e.g. the model file's path, which differs between a laptop and a cluster)."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key (there X, here Y)`` for every top-level key that differs."""

    def short(value: Any) -> str:
        text = json.dumps(value) if value is not _MISSING else "(absent)"
        return text if len(text) <= 60 else text[:57] + "..."

    keys = sorted(set(old) | set(new))
    return [f"{k} (there {short(old.get(k, _MISSING))}, here {short(new.get(k, _MISSING))})"
            for k in keys if old.get(k, _MISSING) != new.get(k, _MISSING)]


_MISSING = object()


class ResultsDir:
    """The files of one sweep (see the module docstring for the layout)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def cells_dir(self) -> Path:
        return self.path / CELLS_DIR

    def cell_file(self, cell_id: str, table: str = RESULTS_TABLE) -> Path:
        suffix = ".parquet" if table == RESULTS_TABLE else f".{table}.parquet"
        return self.cells_dir / f"{cell_id}{suffix}"

    def failure_file(self, cell_id: str) -> Path:
        return self.path / FAILURES_DIR / f"{cell_id}.json"

    def read_config(self) -> dict[str, Any] | None:
        file = self.path / CONFIG_FILE
        if not file.exists():
            return None
        try:  # bounded and strict: a crafted file is one clear error
            return read_json(file, "sweep configuration", allow_nan=True)
        except (OSError, CorruptFileError) as err:
            raise ConfigError(f"{str(file)!r} is unreadable ({err}); delete the results directory to start over") from None

    def check_config(self, config: Mapping[str, Any]) -> bool:
        """Refuse a directory written by another configuration; True if it already has this one."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"results path {str(self.path)!r} is a file, not a directory")
        wanted = _identity(json.loads(canonical_json(dict(config))))
        existing = self.read_config()
        existing = _identity(existing) if existing is not None else None
        if existing is None and self.cells_dir.exists() and any(self.cells_dir.iterdir()):
            raise ConfigError(f"{str(self.path)!r} holds cell results but no {CONFIG_FILE}; refusing to mix "
                              f"runs (choose another results directory)")
        if existing is not None and existing != wanted:
            raise ConfigError(
                f"results directory {str(self.path)!r} was written by a different configuration; differing keys: "
                + "; ".join(_differences(existing, wanted))
                + ". Use another results directory (or delete this one) instead of mixing results")
        return existing is not None

    def prepare(self, config: Mapping[str, Any], cells: list[tuple[str, dict[str, Any]]]) -> None:
        """Check (or write) config.json, write cells.json, remove temporaries of killed runs."""
        wanted = json.loads(canonical_json(dict(config)))
        has_config = self.check_config(wanted)
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        if not has_config:
            atomic_write_text(self.path / CONFIG_FILE, json.dumps(wanted, indent=2, sort_keys=True) + "\n")
        listing = [{"cell_id": cid, "params": params} for cid, params in cells]
        atomic_write_text(self.path / CELLS_FILE, json.dumps(listing, indent=1) + "\n")
        for stale in self.cells_dir.glob(f"{TMP_PREFIX}*"):
            stale.unlink(missing_ok=True)

    def cells(self) -> list[tuple[str, dict[str, Any]]]:
        file = self.path / CELLS_FILE
        if not file.exists():
            raise ConfigError(f"{str(self.path)!r} is not a sweep results directory (no {CELLS_FILE})")
        return [(item["cell_id"], item["params"]) for item in json.loads(file.read_text())]

    def is_done(self, cell_id: str) -> bool:
        return self.cell_file(cell_id).exists()

    def write_cell(self, cell_id: str, result: CellResult) -> None:
        """Extras and arrays first, the main file last: its presence marks the cell done."""
        for table, rows in result.tables.items():
            _write_parquet(self.cell_file(cell_id, table), _with_cell_id(rows, cell_id))
        if result.arrays:
            with atomic_path(self.cells_dir / f"{cell_id}.npz") as tmp:
                with open(tmp, "wb") as handle:
                    np.savez_compressed(handle, **result.arrays)
        _write_parquet(self.cell_file(cell_id), _with_cell_id(result.rows, cell_id))
        self.failure_file(cell_id).unlink(missing_ok=True)

    def write_failure(self, cell_id: str, params: dict[str, Any], outcome: CellOutcome) -> None:
        record = {"cell_id": cell_id, "params": params, "error": outcome.error, "traceback": outcome.traceback,
                  "seconds": outcome.seconds, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_text(self.failure_file(cell_id), json.dumps(record, indent=1, default=str) + "\n")

    def cell_arrays(self, cell_id: str) -> dict[str, np.ndarray] | None:
        file = self.cells_dir / f"{cell_id}.npz"
        if not file.exists():
            return None
        with np.load(file, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}

    def table_names(self) -> list[str]:
        """Extra tables present in finished cells."""
        names = set()
        for file in self.cells_dir.glob("*.parquet"):
            parts = file.name[:-len(".parquet")].rsplit(".", 1)
            if len(parts) == 2 and _TABLE_NAME.match(parts[1]) and self.is_done(parts[0]):
                names.add(parts[1])
        return sorted(names)

    def consolidate(self) -> pd.DataFrame:
        """Write ``results.parquet``/``.csv`` and ``<table>.parquet`` from the finished cells."""
        done = [cid for cid, _ in self.cells() if self.is_done(cid)]
        frame = _concat([self.cell_file(cid) for cid in done])
        _write_frame(self.path / "results.parquet", frame)
        with atomic_path(self.path / "results.csv") as tmp:
            frame.to_csv(tmp, index=False)
        for table in self.table_names():
            files = [self.cell_file(cid, table) for cid in done if self.cell_file(cid, table).exists()]
            _write_frame(self.path / f"{table}.parquet", _concat(files))
        return frame


def _with_cell_id(rows: list[dict[str, Any]], cell_id: str) -> list[dict[str, Any]]:
    return [{"cell_id": cell_id, **row} if "cell_id" not in row else dict(row) for row in rows]


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    _write_frame(path, pd.DataFrame.from_records(rows) if rows else pd.DataFrame({"cell_id": []}))


def _write_frame(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _concat(files: list[Path]) -> pd.DataFrame:
    """Rows of several parquet files in order (dtypes inferred over all rows)."""
    records: list[dict[str, Any]] = []
    columns: dict[str, None] = {}
    for file in files:
        frame = pd.read_parquet(file)
        columns.update(dict.fromkeys(frame.columns))
        records.extend(frame.to_dict("records"))
    if not records:
        return pd.DataFrame({c: [] for c in columns or ["cell_id"]})
    return pd.DataFrame.from_records(records, columns=list(columns))


# ----------------------------------------------------------------- running

@dataclass
class SweepSummary:
    """What a run did."""

    results_dir: Path
    total: int
    skipped: int
    ran: int
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # caveats about the configuration, for the user

    def raise_for_failures(self) -> None:
        if self.failed:
            first_id, first = next(iter(self.failed.items()))
            raise SweepFailedError(
                f"{len(self.failed)} of {self.total} cells failed (first: {first_id}: {first}); details in "
                f"{str(self.results_dir / FAILURES_DIR)!r}; the other cells were saved and running the same "
                f"command again retries only the missing ones")

    def to_dict(self) -> dict[str, Any]:
        return {"results_dir": str(self.results_dir), "total": self.total, "skipped": self.skipped,
                "ran": self.ran, "failed": dict(self.failed), "seconds": self.seconds, "notes": list(self.notes)}


def _check_picklable(fn: CellFn, config: Mapping[str, Any]) -> None:
    try:
        pickle.dumps(fn)
        pickle.dumps(dict(config))
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        raise ConfigError(f"the cell function must be a module-level function to run in worker processes: {err}") from None


def run_sweep(
    results_dir: str | os.PathLike,
    config: Mapping[str, Any],
    cells: Sequence[Mapping[str, Any]],
    fn: CellFn,
    *,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    quiet: bool = False,
    description: str = "sweep",
) -> SweepSummary:
    """Run every unfinished cell of a sweep and consolidate the results.

    Args:
        results_dir: where config, per-cell files and consolidated tables go.
        config: JSON-serialisable; identifies the sweep (a directory written with
            another config is refused).
        cells: parameter dicts; each gets ``make_cell_id(cell)``.
        fn: ``fn(config, cell)`` returning rows (module-level, so workers can import it).
        executor: ``local`` (process pool; ``workers=1`` runs in this process) or
            ``ray`` (a local Ray instance, or the cluster at ``address``).
        workers: parallel cells (local pool size; CPUs of a local Ray instance).
        quiet: no progress bar.

    Returns:
        :class:`SweepSummary`; failed cells are listed there, not raised.
    """
    from .executors import run_cells

    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if address and executor != "ray":
        raise ConfigError("--address applies only to the ray executor")
    config = json.loads(canonical_json(dict(config)))
    listing = [(make_cell_id(cell), json.loads(canonical_json(dict(cell)))) for cell in cells]
    ids = [cid for cid, _ in listing]
    if len(set(ids)) != len(ids):
        raise ConfigError("the sweep has duplicate cells (identical parameters)")
    if executor == "ray" or workers > 1:
        _check_picklable(fn, config)
    store = ResultsDir(results_dir)
    store.prepare(config, listing)
    todo = [(cid, params) for cid, params in listing if not store.is_done(cid)]
    summary = SweepSummary(store.path, len(listing), len(listing) - len(todo), 0)
    start = time.perf_counter()
    with progress(quiet=quiet) as bar:
        task = bar.add_task(description, total=len(listing), status="")
        bar.update(task, completed=summary.skipped)
        params_of = dict(todo)
        for cell_id, outcome in run_cells(fn, config, todo, executor=executor, workers=workers, address=address):
            if outcome.ok and outcome.result is not None:
                store.write_cell(cell_id, outcome.result)
                summary.ran += 1
            else:
                store.write_failure(cell_id, params_of[cell_id], outcome)
                summary.failed[cell_id] = outcome.error or "unknown error"
            bar.update(task, advance=1, status=f"[red]{len(summary.failed)} failed" if summary.failed else "")
    store.consolidate()
    summary.seconds = time.perf_counter() - start
    return summary


def consolidate(results_dir: str | os.PathLike) -> pd.DataFrame:
    """Rebuild the consolidated tables from the finished cells (e.g. while a sweep runs)."""
    return ResultsDir(results_dir).consolidate()


def load_results(results_dir: str | os.PathLike, table: str = RESULTS_TABLE) -> pd.DataFrame:
    """The consolidated table ``table`` of a results directory (consolidating first)."""
    store = ResultsDir(results_dir)
    store.consolidate()
    file = store.path / f"{table}.parquet"
    if not file.exists():
        raise ConfigError(f"{str(store.path)!r} has no table {table!r}")
    return pd.read_parquet(file)
