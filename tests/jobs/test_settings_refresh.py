"""Refresh configuration comes from Settings: the CLI and the scheduler read it, and refuse bad values."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from pydantic import ValidationError

import store
from api.cli import run
from api.cli.refresh import _cadence, _executor
from jobs.executors import DaskRunner, InProcessExecutor, ProcessPoolRunner
from jobs.pipeline import RefreshSpec
from jobs.scheduler import Cadence
from jobs.settings import Settings
from store import repo
from tests.jobs.refresh_helpers import TEST_AS_OF, store_book
from tests.jobs.test_scheduler import _empty_archive


def test_refresh_settings_are_read_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SITEWATCH_DASK_ADDRESS", "tcp://10.0.0.5:8786")
    monkeypatch.setenv("SITEWATCH_REFRESH_CADENCE_DAYS", "2.5")
    monkeypatch.setenv("SITEWATCH_REFRESH_JITTER", "0.25")
    monkeypatch.setenv("SITEWATCH_JOB_LEASE_S", "90")
    monkeypatch.setenv("SITEWATCH_JOB_QUEUED_TIMEOUT_S", "600")
    monkeypatch.setenv("SITEWATCH_SCENE_MAX_READ_ATTEMPTS", "5")
    settings = Settings(data_dir=tmp_path)
    assert Cadence.from_settings(settings) == Cadence(timedelta(days=2.5), 0.25)
    spec = RefreshSpec.from_settings(settings, as_of=TEST_AS_OF)
    assert (spec.lock_ttl_s, spec.queued_timeout_s, spec.max_read_attempts) == (90.0, 600.0, 5)
    assert spec.stale_policy.lease == timedelta(seconds=90)
    runner = _executor(settings, None, None, None)
    assert isinstance(runner, DaskRunner)
    assert runner.address == "tcp://10.0.0.5:8786", "no --dask-address: the settings' one"
    assert _executor(settings, None, None, "tcp://10.0.0.6:8786").address == "tcp://10.0.0.6:8786"
    assert isinstance(_executor(settings, "processes", 2, None), ProcessPoolRunner), "a named executor wins"
    assert isinstance(_executor(settings, "inprocess", None, None), InProcessExecutor)
    assert _cadence(settings, 1.0, None) == Cadence(timedelta(days=1), 0.25), "options override one field each"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SITEWATCH_DASK_ADDRESS", "10.0.0.5:8786"),
        ("SITEWATCH_REFRESH_CADENCE_DAYS", "0"),
        ("SITEWATCH_REFRESH_JITTER", "1.5"),
        ("SITEWATCH_JOB_LEASE_S", "-1"),
        ("SITEWATCH_SCENE_MAX_READ_ATTEMPTS", "0"),
    ],
)
def test_bad_refresh_settings_are_refused_naming_the_field(monkeypatch, tmp_path, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as info:
        Settings(data_dir=tmp_path)
    field = variable.removeprefix("SITEWATCH_").lower()
    assert field in str(info.value) or variable in str(info.value)


def test_no_dask_address_means_this_machine(tmp_path):
    assert isinstance(_executor(Settings(data_dir=tmp_path), None, None, None), InProcessExecutor)


def test_refresh_due_follows_the_cadence_in_the_settings(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    _empty_archive(tmp_path / "archive")
    monkeypatch.setenv("SITEWATCH_CHECKPOINT", "")
    argv = ["--data-dir", str(tmp_path), "--database-url", url, "refresh", "--due", "--json",
            "--as-of", TEST_AS_OF.isoformat(), "--no-portfolio"]  # fmt: skip
    n_sites = len(repo.list_site_ids(engine))
    assert run(argv) == 0
    assert json.loads(capsys.readouterr().out)["sites"] == n_sites
    # a cadence of about 0.09 s with no jitter: every site has a new slot by the time it is asked again
    monkeypatch.setenv("SITEWATCH_REFRESH_CADENCE_DAYS", "0.000001")
    monkeypatch.setenv("SITEWATCH_REFRESH_JITTER", "0")
    time.sleep(0.2)
    assert run(argv) == 0
    assert json.loads(capsys.readouterr().out)["sites"] == n_sites
    monkeypatch.setenv("SITEWATCH_REFRESH_CADENCE_DAYS", "5")
    assert run(argv) == 0
    assert json.loads(capsys.readouterr().out)["sites"] == 0, "five days: none due again"


def test_workers_and_front_doors_share_one_provider_per_configuration(tmp_path):
    from jobs.context import open_provider
    from jobs.pipeline import provider_for

    settings = Settings(data_dir=tmp_path)
    provider = open_provider(settings)
    assert provider_for(RefreshSpec.from_settings(settings, as_of=TEST_AS_OF)) is provider
    assert open_provider(Settings(data_dir=tmp_path / "other")) is not provider
