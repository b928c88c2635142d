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
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
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


class ProcessPoolRunner:
    """A pool of local worker processes (spawned, so no state leaks in from the parent).

    Args:
        max_workers: Worker processes (default: the CPU count).
    """

    name = "processes"
    in_process = False

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.max_workers, mp_context=ctx)
        return self._pool

    def map_unordered(
        self,
        fn: Callable[..., R],
        items: Sequence[tuple[Any, ...]],
        *,
        on_error: Callable[[tuple[Any, ...], BaseException], R],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[R]:
        """Submit every item, yield results as they complete; pending items are cancelled on stop."""
        pool = self._get_pool()
        futures: dict[Future[R], tuple[Any, ...]] = {pool.submit(fn, *item): item for item in items}
        for fut in as_completed(futures):
            if should_stop():
                for other in futures:
                    other.cancel()
            if fut.cancelled():
                continue
            try:
                yield fut.result()
            except Exception as exc:  # a dead worker breaks the pool: each of its items is reported
                yield on_error(futures[fut], exc)

    def close(self) -> None:
        """Shut the pool down."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


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
