"""The scheduler: cadence per site with deterministic jitter, catch-up once after downtime, clean stop."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import datetime, timedelta

import pytest

import store
from api.cli import run
from jobs.scheduler import EPOCH, Cadence, Scheduler, due_sites
from store import jobs_repo, repo
from tests.jobs.refresh_helpers import TEST_AS_OF, spec_for, store_book

DAY = timedelta(days=1)
EMPTY_CATALOG = '{"type": "Catalog", "id": "empty", "stac_version": "1.0.0", "description": "none", "links": []}'


def _empty_archive(path):
    path.mkdir()
    (path / "catalog.json").write_text(EMPTY_CATALOG)
    return path


def test_offsets_are_deterministic_and_spread_over_the_cycle():
    cadence = Cadence(5 * DAY)
    ids = [f"site-{k}" for k in range(200)]
    offsets = [cadence.offset(i) for i in ids]
    assert offsets == [Cadence(5 * DAY).offset(i) for i in ids], "the same on every run and machine"
    assert all(timedelta(0) <= o < 5 * DAY for o in offsets)
    per_day = [sum(k * DAY <= o < (k + 1) * DAY for o in offsets) for k in range(5)]
    assert min(per_day) > 20, per_day  # about 40 per day: a big book does not all fire at once
    assert {Cadence(5 * DAY, jitter=0.0).offset(i) for i in ids} == {timedelta(0)}


def test_slots_follow_the_cadence():
    cadence = Cadence(5 * DAY)
    first = EPOCH + cadence.offset("a")
    assert cadence.latest_slot("a", first - timedelta(seconds=1)) is None
    assert cadence.latest_slot("a", first) == first
    assert cadence.latest_slot("a", first + 12 * DAY) == first + 10 * DAY
    assert cadence.next_slot("a", first + 12 * DAY) == first + 15 * DAY


def test_an_overdue_site_is_due_once_however_many_slots_it_missed():
    cadence = Cadence(5 * DAY, jitter=0.0)
    now = EPOCH + 100 * 5 * DAY + timedelta(hours=1)
    last = {"fresh": now - timedelta(minutes=30), "week": now - 7 * DAY, "month": now - 31 * DAY}
    assert due_sites(["fresh", "week", "month", "never"], last, now, cadence) == ["week", "month", "never"]


@pytest.fixture
def book(tmp_path):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    # An empty catalogue: every refresh finds nothing, at once; the cadence is what is tested.
    yield engine, spec_for(url, _empty_archive(tmp_path / "archive"), tmp_path / "cache", retries=0)
    engine.dispose()


def test_scheduler_runs_each_site_once_per_slot_and_once_after_downtime(book):
    engine, spec = book
    sites = [s.id for s in repo.list_sites(engine)]
    cadence = Cadence(5 * DAY, jitter=0.0)
    t0 = EPOCH + 200 * 5 * DAY + timedelta(hours=2)
    now = [t0]
    sched = Scheduler(engine, lambda _: spec, cadence=cadence, clock=lambda: now[0], sleep=lambda _: None)

    def runs_per_site() -> dict[str, int]:
        out = dict.fromkeys(sites, 0)
        for r in jobs_repo.list_jobs(engine, limit=None):
            out[r.site_id] += 1
        return out

    first = sched.tick()
    assert first is not None
    assert sorted(o.site_id for o in first.outcomes) == sorted(sites), "never refreshed: all due"
    assert {o.label for o in first.outcomes} == {"skipped: no scenes found"}
    now[0] = t0 + DAY
    assert sched.tick() is None, "nothing due before the next slot"
    now[0] = t0 + 5 * DAY
    assert sched.tick() is not None
    assert set(runs_per_site().values()) == {2}
    # 37 days of downtime: seven missed slots, one run each
    now[0] = t0 + 42 * DAY
    assert len(sched.tick().outcomes) == len(sites)
    assert sched.tick() is None
    assert set(runs_per_site().values()) == {3}
    assert {r.trigger for r in jobs_repo.list_jobs(engine, limit=None)} == {"schedule"}


def test_jittered_sites_fire_at_their_own_times(book):
    engine, spec = book
    cadence = Cadence(5 * DAY, jitter=1.0)
    sites = [s.id for s in repo.list_sites(engine)]
    t0 = EPOCH + 300 * 5 * DAY
    now = [t0]
    sched = Scheduler(engine, lambda _: spec, cadence=cadence, clock=lambda: now[0])
    sched.tick()  # everyone's first run
    fired: dict[str, datetime] = {}
    for hour in range(1, 5 * 24 + 1, 6):
        now[0] = t0 + timedelta(hours=hour)
        result = sched.tick()
        for o in result.outcomes if result else ():
            fired.setdefault(o.site_id, now[0])
    assert set(fired) == set(sites), "each site fires once in the next cycle"
    assert len(set(fired.values())) > 1, "not all at once"
    for site_id, at in fired.items():
        slot = cadence.latest_slot(site_id, at)
        assert slot is not None
        assert at - timedelta(hours=6) < slot <= at


def test_scheduler_stops_cleanly_when_asked(book):
    engine, spec = book
    sched = Scheduler(engine, lambda _: spec, poll_s=60.0)
    done = []
    thread = threading.Thread(target=lambda: done.append(sched.run_forever()))
    thread.start()
    threading.Timer(0.5, sched.stop).start()
    thread.join(30)
    assert not thread.is_alive()
    assert done == [1]


def test_scheduler_command_stops_on_sigterm(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    _empty_archive(tmp_path / "archive")
    monkeypatch.setenv("SITEWATCH_CHECKPOINT", "")
    default = signal.getsignal(signal.SIGTERM)
    gone = threading.Event()

    def terminate_once_handled() -> None:
        # only signal once the command has installed its handler: the default one would end pytest
        for _ in range(600):
            if gone.is_set():
                return
            if signal.getsignal(signal.SIGTERM) is not default:
                time.sleep(0.5)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=terminate_once_handled)
    killer.start()
    try:
        rc = run(["--data-dir", str(tmp_path), "--database-url", url, "scheduler", "--poll-s", "60"])
    finally:
        gone.set()
        killer.join(5)
    assert rc == 0
    records = jobs_repo.list_jobs(engine, limit=None)
    assert len(records) == len(repo.list_sites(engine))
    assert {r.status for r in records} <= {"skipped", "abandoned"}
    assert signal.getsignal(signal.SIGTERM) is default


def test_refresh_due_runs_only_due_sites(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    _empty_archive(tmp_path / "archive")
    monkeypatch.setenv("SITEWATCH_CHECKPOINT", "")
    argv = ["--data-dir", str(tmp_path), "--database-url", url, "refresh", "--due", "--json",
            "--as-of", TEST_AS_OF.isoformat()]  # fmt: skip
    assert run(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["sites"] == len(repo.list_sites(engine))
    assert run(argv) == 0
    assert json.loads(capsys.readouterr().out)["sites"] == 0, "just ran: none due"
    assert {o["status"] for o in first["outcomes"]} == {"skipped"}


def test_refresh_all_shows_progress_and_jobs_lists_the_records(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    _empty_archive(tmp_path / "archive")
    monkeypatch.setenv("SITEWATCH_CHECKPOINT", "")
    root = ["--data-dir", str(tmp_path), "--database-url", url]
    n_sites = len(repo.list_sites(engine))
    assert run([*root, "refresh", "--all", "--as-of", TEST_AS_OF.isoformat()]) == 0
    captured = capsys.readouterr()
    assert f"{n_sites} site(s): 0 ok (0 without new scenes), {n_sites} skipped, 0 failed" in captured.out
    assert run([*root, "jobs", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == n_sites
    assert {r["trigger"] for r in records} == {"manual"}
    assert all(r["stage_seconds"] and r["finished_at"] for r in records)
    assert run([*root, "refresh", "no-such-site"]) == 3
    assert run([*root, "refresh", "--all", "--due"]) == 2
