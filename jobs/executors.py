"""Where site refreshes run: this process, a local process pool, or a Dask distributed cluster.

Each executor maps one top-level function over argument tuples made of plain values (strings,
dates, frozen dataclasses), and yields results as they finish. Workers open their own database
engine and provider from those values: engines, connections and clients never cross a process
boundary. A task that raises, or whose worker is lost for good, yields ``on_error(args, exc)``.

On Dask, a worker that dies mid-task has its tasks rescheduled by the scheduler on the workers
left (up to ``distributed.scheduler.allowed-failures`` times); the refresh function is idempotent
and keyed by its job id, so the rerun completes the same job record instead of adding one.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal, Protocol, TypeVar

logger = logging.getLogger(__name__)

R = TypeVar("R")

ExecutorKind = Literal["inprocess", "processes", "dask"]


class Executor(Protocol):
    """Runs a function over argument tuples; yields each result as it finishes."""

    #: Recorded in job records: "inprocess", "processes" or "dask".
    name: str
    #: True when tasks run in the caller's process (they may then share its engine).
    in_process: bool

    def map_unordered(
        self,
        fn: Callable[..., R],
        items: Sequence[tuple[Any, ...]],
        *,
        on_error: Callable[[tuple[Any, ...], BaseException], R],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[R]:
        """``fn(*item)`` for every item, in completion order; stops submitting when ``should_stop()``."""
        ...

    def close(self) -> None:
        """Release workers and connections the executor started."""
        ...


class InProcessExecutor:
    """One task after another in this process (the default, and the easiest to debug)."""

    name = "inprocess"
    in_process = True

    def map_unordered(
        self,
        fn: Callable[..., R],
        items: Sequence[tuple[Any, ...]],
        *,
        on_error: Callable[[tuple[Any, ...], BaseException], R],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[R]:
        """Run each item in turn; check ``should_stop`` between items."""
        for item in items:
            if should_stop():
                return
            try:
                yield fn(*item)
            except Exception as exc:
                yield on_error(item, exc)

    def close(self) -> None:
        """Nothing to release."""


#: In a pool worker: where it says which task it starts (set by the pool's initializer).
_started: Any = None


def _init_worker(started: Any) -> None:
    global _started
    _started = started


def _run_reporting_start(fn: Callable[..., R], index: int, *args: Any) -> R:
    """Say "task ``index`` started" to the parent, then run it (in a pool worker)."""
    _started.put(index)
    return fn(*args)


class ProcessPoolRunner:
    """A pool of local worker processes (spawned, so no state leaks in from the parent).

    A worker that dies (killed, out of memory, a crash in native code) breaks the whole pool:
    every task still in it fails with ``BrokenProcessPool``. They run again on a fresh pool, as
    Dask reschedules the tasks of a lost worker. A task that had started when its pool broke may
    run ``resubmits`` more times before it is reported through ``on_error``; one that had not
    started yet costs nothing. Site jobs are idempotent per job id, so a resubmitted site
    finishes its own record, with its attempts counted there.

    Args:
        max_workers: Worker processes (default: the CPU count).
        resubmits: Times a task that was running when its pool broke is submitted again.
    """

    name = "processes"
    in_process = False

    def __init__(self, max_workers: int | None = None, *, resubmits: int = 1) -> None:
        self.max_workers = max_workers
        self.resubmits = resubmits
        self._pool: ProcessPoolExecutor | None = None
        self._started: Any = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._started = ctx.SimpleQueue()
            self._pool = ProcessPoolExecutor(
                max_workers=self.max_workers, mp_context=ctx, initializer=_init_worker, initargs=(self._started,)
            )
        return self._pool

    def _drain_started(self) -> set[int]:
        started: set[int] = set()
        while self._started is not None and not self._started.empty():
            started.add(int(self._started.get()))
        return started

    def _drop_pool(self, *, wait: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None
        if self._started is not None:
            self._started.close()
            self._started = None

    def map_unordered(
        self,
        fn: Callable[..., R],
        items: Sequence[tuple[Any, ...]],
        *,
        on_error: Callable[[tuple[Any, ...], BaseException], R],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[R]:
        """Submit every item, yield results as they complete; pending items are cancelled on stop.

        Items lost with a dead worker run again on a fresh pool (see the class docstring).
        """
        losses = [0] * len(items)
        todo = list(range(len(items)))
        stopped = False
        while todo and not stopped:
            pool = self._get_pool()
            futures = {pool.submit(_run_reporting_start, fn, k, *items[k]): k for k in todo}
            todo = []
            lost: list[tuple[int, BaseException]] = []
            started: set[int] = set()
            for fut in as_completed(futures):
                started |= self._drain_started()  # read as we go: a full pipe would block the workers
                if should_stop() and not stopped:
                    stopped = True
                    for other in futures:
                        other.cancel()
                if fut.cancelled():
                    continue
                k = futures[fut]
                try:
                    yield fut.result()
                except BrokenProcessPool as exc:  # its worker died, or another one did and took the pool with it
                    lost.append((k, exc))
                except Exception as exc:
                    yield on_error(items[k], exc)
            if not lost:
                continue
            started |= self._drain_started()
            self._drop_pool(wait=False)
            for k, why in lost:
                losses[k] += k in started
                if stopped or losses[k] > self.resubmits:
                    yield on_error(items[k], why)
                else:
                    todo.append(k)
            logger.warning("a worker process died: %d task(s) resubmitted to a fresh pool", len(todo))

    def close(self) -> None:
        """Shut the pool down."""
        self._drop_pool(wait=True)


class DaskRunner:
    """Tasks on a Dask distributed cluster.

    Args:
        address: Scheduler address, e.g. ``tcp://10.0.0.5:8786``.
        client: An existing ``distributed.Client`` (tests pass one on a LocalCluster); it is
            not closed by :meth:`close`.
        key_prefix: Task keys are ``<prefix>-<job id>``, readable on the dashboard.
    """

    name = "dask"
    in_process = False

    def __init__(self, address: str | None = None, *, client: Any = None, key_prefix: str = "refresh") -> None:
        if (address is None) == (client is None):
            raise ValueError("give a Dask scheduler address (SITEWATCH_DASK_ADDRESS) or a client, not both")
        self.address = address
        self._own_client = client is None
        self._client = client
        self.key_prefix = key_prefix

    @property
    def client(self) -> Any:
        """The distributed client (connected on first use)."""
        if self._client is None:
            from distributed import Client

            self._client = Client(self.address, set_as_default=False)  # type: ignore[no-untyped-call]
        return self._client

    def map_unordered(
        self,
        fn: Callable[..., R],
        items: Sequence[tuple[Any, ...]],
        *,
        on_error: Callable[[tuple[Any, ...], BaseException], R],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[R]:
        """Submit every item as one task (not pure: reruns are wanted), yield results as they complete."""
        from distributed import as_completed as dask_as_completed

        client = self.client
        futures = {client.submit(fn, *item, key=f"{self.key_prefix}-{item[-1]}", pure=False): item for item in items}
        for fut in dask_as_completed(list(futures)):  # type: ignore[no-untyped-call]
            if should_stop():
                client.cancel([f for f in futures if not f.done()])
            if fut.cancelled():
                continue
            try:
                yield fut.result()
            except Exception as exc:  # the task raised, or killed its workers too often (KilledWorker)
                yield on_error(futures[fut], exc)

    def close(self) -> None:
        """Close the client if this runner opened it."""
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None


def make_executor(kind: ExecutorKind | str, *, workers: int | None = None, dask_address: str | None = None) -> Executor:
    """The executor of a kind from plain values.

    Raises:
        ValueError: an unknown kind, or "dask" without an address.
    """
    if kind == "inprocess":
        return InProcessExecutor()
    if kind == "processes":
        return ProcessPoolRunner(workers)
    if kind == "dask":
        if not dask_address:
            raise ValueError("the dask executor needs a scheduler address (--dask-address or SITEWATCH_DASK_ADDRESS)")
        return DaskRunner(dask_address)
    raise ValueError(f"unknown executor {kind!r}; expected inprocess, processes or dask")
