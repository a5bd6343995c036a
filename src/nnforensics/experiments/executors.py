"""Where cells run: in this process, in a local process pool, or as Ray tasks.

Every executor yields ``(cell_id, CellOutcome)`` as cells finish; the driver alone
writes files, so workers need no access to the results directory. A cell that
raises comes back as a failed outcome with its traceback (never as an exception),
so one bad cell does not stop the others.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigError
from .sweep import CellFn, CellOutcome, as_cell_result

Cells = list[tuple[str, dict[str, Any]]]


def threads_per_cell(workers: int) -> int:
    """Torch threads per worker so that ``workers`` cells do not oversubscribe the cores."""
    return max(1, (os.cpu_count() or 1) // workers)


def execute_cell(fn: CellFn, config: dict[str, Any], cell: dict[str, Any], threads: int | None = None) -> CellOutcome:
    """Run one cell, catching its errors (runs inside workers)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        result = as_cell_result(fn(config, cell))
    except Exception as err:  # reported per cell; the sweep goes on
        return CellOutcome(None, f"{type(err).__name__}: {err}", traceback.format_exc(),
                           time.perf_counter() - start)
    return CellOutcome(result, seconds=time.perf_counter() - start)


def run_cells(
    fn: CellFn, config: dict[str, Any], cells: Cells, *, executor: str, workers: int, address: str | None,
) -> Iterator[tuple[str, CellOutcome]]:
    """Dispatch to the executor; yields outcomes in completion order."""
    if not cells:
        return iter(())
    if executor == "ray":
        return _run_ray(fn, config, cells, workers, address)
    if workers == 1:
        return _run_inline(fn, config, cells)
    return _run_pool(fn, config, cells, workers)


def _run_inline(fn: CellFn, config: dict[str, Any], cells: Cells) -> Iterator[tuple[str, CellOutcome]]:
    for cell_id, params in cells:
        yield cell_id, execute_cell(fn, config, params)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_pool(fn: CellFn, config: dict[str, Any], cells: Cells, workers: int) -> Iterator[tuple[str, CellOutcome]]:
    """A spawn-based process pool (safe with torch threads and accelerators)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    threads = threads_per_cell(workers)
    pool = ProcessPoolExecutor(max_workers=min(workers, len(cells)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads,))
    finished = False
    try:
        futures = {pool.submit(execute_cell, fn, config, params): cell_id for cell_id, params in cells}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except BrokenProcessPool:
                outcome = CellOutcome(None, "a worker process died (killed, or out of memory?)")
            except Exception as err:  # e.g. a result that cannot be pickled back
                outcome = CellOutcome(None, f"{type(err).__name__}: {err}", traceback.format_exc())
            yield futures[future], outcome
        finished = True
    finally:
        # interrupted: drop queued cells and do not wait here for those in flight
        pool.shutdown(wait=finished, cancel_futures=True)


def _start_ray(ray: Any, address: str | None, num_cpus: int) -> None:
    """Connect to ``address`` or start a local instance, without Ray's notices reaching the user.

    Ray logs notices at WARNING level while it starts (e.g. "Token authentication is
    enabled for this Ray cluster..."): addressed to cluster operators, not to someone
    running a sweep, so only its errors are shown (ERROR level, no Python warnings).
    """
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if not address:
        options.update(num_cpus=num_cpus, include_dashboard=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ray.init(address=address or None, **options)
    except ConnectionError as err:
        raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {err}") from None


def _run_ray(
    fn: CellFn, config: dict[str, Any], cells: Cells, workers: int, address: str | None,
) -> Iterator[tuple[str, CellOutcome]]:
    """Cells as Ray tasks (one CPU-share each); a Ray instance started here is shut down after."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray: pip install 'ray>=2.9' (or use --executor local)") from None
    threads = threads_per_cell(workers)
    started = False
    if not ray.is_initialized():
        _start_ray(ray, address, workers * threads)
        started = True
    try:
        task = ray.remote(num_cpus=threads, max_retries=0)(execute_cell)
        config_ref = ray.put(config)
        pending = {task.remote(fn, config_ref, params, threads): cell_id for cell_id, params in cells}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    cell_id = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as err:  # the worker died, or the task could not run
                        outcome = CellOutcome(None, f"{type(err).__name__}: {str(err).splitlines()[0]}",
                                              traceback.format_exc())
                    yield cell_id, outcome
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
    finally:
        if started:
            ray.shutdown()
