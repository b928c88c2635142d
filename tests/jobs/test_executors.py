"""The process pool runs a task again when its worker dies, once; a task that keeps killing workers is reported."""

from __future__ import annotations

import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from jobs.executors import ProcessPoolRunner


def _die_the_first_time(marker: str, value: int) -> int:
    """Kills its worker process on the first call for ``marker``, returns ``value`` on the next."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died once")
        os._exit(1)
    return value


def _always_die(counter: str) -> int:
    path = Path(counter)
    path.write_text(path.read_text() + "x" if path.exists() else "x")
    os._exit(1)


def test_a_task_whose_worker_died_is_resubmitted_once_and_finishes(tmp_path):
    runner = ProcessPoolRunner(1)
    errors: list[BaseException] = []
    try:
        (tmp_path / "b").write_text("never dies")
        items = [(str(tmp_path / "a"), 1), (str(tmp_path / "b"), 2), (str(tmp_path / "c"), 3)]
        results = list(runner.map_unordered(_die_the_first_time, items, on_error=lambda _i, e: errors.append(e) or -1))
    finally:
        runner.close()
    # a and c each killed their worker once; b was lost with a's pool: every one ran again and finished
    assert sorted(results) == [1, 2, 3]
    assert errors == []
    assert (tmp_path / "c").read_text() == "died once"


def test_a_task_that_kills_its_worker_every_time_is_reported_after_one_resubmit(tmp_path):
    counter = tmp_path / "calls"
    runner = ProcessPoolRunner(1)
    errors: list[BaseException] = []
    try:
        results = list(
            runner.map_unordered(_always_die, [(str(counter),)], on_error=lambda _i, e: errors.append(e) or -1)
        )
    finally:
        runner.close()
    assert results == [-1]
    assert len(errors) == 1
    assert isinstance(errors[0], BrokenProcessPool)
    assert counter.read_text() == "xx", "run twice: once, then once more on a fresh pool"


def _square(x: int) -> int:
    return x * x


def test_a_long_batch_does_not_fill_the_start_reports_and_hang(tmp_path):
    import threading

    # each task start writes ~11 bytes to a pipe of 64 KiB: 10 000 tasks need the parent to read as it goes
    runner = ProcessPoolRunner(2)
    out: list[int] = []
    items = [(k,) for k in range(10_000)]
    worker = threading.Thread(target=lambda: out.extend(runner.map_unordered(_square, items, on_error=lambda *_: -1)))
    try:
        worker.start()
        worker.join(120)
        assert not worker.is_alive(), "the batch hung"
    finally:
        if not worker.is_alive():
            runner.close()
    assert sorted(out) == [k * k for k in range(10_000)]
