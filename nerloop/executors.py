"""One executor layer for the project's parallel work (the k-fold grid, the strategy comparison).

``run_tasks(func, items, ...)`` calls ``func(item)`` for every item and reports each result or
error as it comes, with one of three engines:

- ``serial``: in this process, one after the other (debugging, one core);
- ``local``: ``processes`` spawned worker processes (a ``ProcessPoolExecutor``), each limited to
  ``threads`` torch/BLAS threads;
- ``ray``: Ray tasks of ``threads`` CPUs each, on a new local Ray instance or on the cluster at
  ``address``. We use Ray rather than writing a scheduler: it gives clusters, retries and
  resource accounting for free.

``func`` and the items must be picklable (a module-level function, ``functools.partial`` of
one, dataclasses). A failing item never stops the others: it goes to ``on_failure``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from pathlib import Path
from typing import Any

from nerloop.errors import SettingsError

EXECUTORS = ("local", "serial", "ray")
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
PROJECT_ROOT = Path(__file__).resolve().parents[1]

OnResult = Callable[[Any, Any], None]
OnFailure = Callable[[Any, BaseException], None]


def default_threads(processes: int) -> int:
    """The CPU cores shared evenly among ``processes`` workers (at least one thread each)."""
    return max(1, (os.cpu_count() or 1) // max(1, processes))


def set_thread_limits(threads: int) -> None:
    """Limit torch's and the BLAS libraries' threads in this process."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            threadpool_limits(threads)


@contextlib.contextmanager
def thread_env(threads: int) -> Iterator[dict[str, str]]:
    """Set the BLAS/OpenMP thread variables for spawned workers, restoring them afterwards."""
    values = {name: str(threads) for name in THREAD_ENV_VARS}
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield values
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _limited(func: Callable[[Any], Any], threads: int, item: Any) -> Any:
    set_thread_limits(threads)
    return func(item)


def run_tasks(
    func: Callable[[Any], Any],
    items: Sequence[Any],
    on_result: OnResult,
    on_failure: OnFailure,
    *,
    executor: str = "local",
    processes: int = 1,
    threads: int | None = None,
    address: str | None = None,
) -> None:
    """Call ``func(item)`` for every item with the chosen engine.

    func (Callable): a picklable function of one item.
    items (Sequence): the work, in order (results may arrive in any order).
    on_result (Callable[[item, result], None]): called in this process for each success.
    on_failure (Callable[[item, error], None]): called in this process for each failure.
    executor (str): ``local``, ``serial`` or ``ray``; ``local`` with one process runs serially.
    processes (int): workers at once (Ray: CPUs of a new local instance = processes * threads).
    threads (int | None): torch/BLAS threads per worker (default: cores / processes).
    address (str | None): a Ray cluster's address (``ray``).
    """
    if executor not in EXECUTORS:
        raise SettingsError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    threads = threads or default_threads(processes)
    if executor == "ray":
        _run_ray(func, items, on_result, on_failure, max(1, processes), threads, address)
    elif executor == "serial" or processes <= 1 or len(items) <= 1:
        for item in items:
            try:
                result = func(item)
            except Exception as err:  # noqa: BLE001  (reported, the other items go on)
                on_failure(item, err)
            else:
                on_result(item, result)
    else:
        _run_local(func, items, on_result, on_failure, processes, threads)


def _run_local(func, items, on_result, on_failure, processes: int, threads: int) -> None:
    context = multiprocessing.get_context("spawn")
    work = partial(_limited, func, threads)
    with (
        thread_env(threads),
        ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool,
    ):
        futures = {pool.submit(work, item): index for index, item in enumerate(items)}
        for future in as_completed(futures):
            item = items[futures[future]]
            error = future.exception()
            if error is not None:
                on_failure(item, error)
            else:
                on_result(item, future.result())


def _run_ray(func, items, on_result, on_failure, processes: int, threads: int, address) -> None:
    """Ray tasks of ``threads`` CPUs each. The workers import the project from its path on the
    driver (PYTHONPATH), so a cluster needs the project and the inputs at the same paths on
    every node (e.g. a shared file system)."""
    try:
        import ray
    except ImportError:
        raise SettingsError(
            "--executor ray needs Ray: pip install 'ray==2.40.0' (check it keeps torch and numpy)"
        ) from None
    python_path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {"PYTHONPATH": python_path, **{name: str(threads) for name in THREAD_ENV_VARS}}
    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": "warning",
        }
        if address:
            options["address"] = address
        else:
            options["num_cpus"] = processes * threads
            options["object_store_memory"] = 256 * 1024 * 1024
        ray.init(**options)
        started = True
    try:
        # Ray takes functions, not functools.partial objects: the arguments go with each task
        remote = ray.remote(num_cpus=threads, max_retries=0, runtime_env={"env_vars": env})(
            _limited
        )
        pending = {remote.remote(func, threads, item): item for item in items}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                item = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:  # noqa: BLE001
                    on_failure(item, err)
                else:
                    on_result(item, result)
    finally:
        if started:
            ray.shutdown()
