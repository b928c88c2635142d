"""A scene that cannot be read is tried a few refreshes running, then rejected until an operator clears it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

import store
from api.cli import run
from imagery.providers.local import LocalArchiveProvider
from jobs.pipeline import run_refresh
from jobs.progress import make_estimator, site_grid
from jobs.refresh import (
    NO_NEW_SCENES,
    READ_ATTEMPTS,
    REASON_REJECTED,
    judge_read_failures,
    list_rejected_scenes,
    refresh_site,
)
from store import repo
from tests.jobs.refresh_helpers import TEST_AS_OF, spec_for, store_book


class _CountingReads:
    """The real provider, counting reads per scene."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.reads = inner, inner.name, {}

    def search(self, *a):
        return self.inner.search(*a)

    def read(self, scene, grid, bands):
        self.reads[scene.scene_id] = self.reads.get(scene.scene_id, 0) + 1
        return self.inner.read(scene, grid, bands)


def _record(engine, site_id, scene_id):
    return next(r for r in repo.list_scene_records(engine, site_id) if r.scene_id == scene_id)


def test_judging_counts_failures_in_a_row_and_rejects_at_the_limit():
    from datetime import UTC, datetime

    from aoi.records import SceneRecord

    at = datetime(2026, 1, 1, tzinfo=UTC)
    records = [
        SceneRecord("s", "local", "a", at, None, 0.0, False, "read error: timed out"),
        SceneRecord("s", "local", "b", at, None, 0.0, False, "read error: timed out"),
        SceneRecord("s", "local", "c", at, 3.0, 0.9, True, ""),
    ]
    judged = judge_read_failures(records, {"a": 2}, max_attempts=3)
    assert (
        judged[0].reason == f"{REASON_REJECTED}: unreadable in 3 refreshes in a row; last error: read error: timed out"
    )
    assert judged[0].meta[READ_ATTEMPTS] == 3
    assert (judged[1].reason, judged[1].meta[READ_ATTEMPTS]) == ("read error: timed out", 1)
    assert judged[2] == records[2]
    with pytest.raises(ValueError, match="max_attempts"):
        judge_read_failures(records, {}, max_attempts=0)


@pytest.mark.integration
def test_an_unreadable_scene_is_rejected_after_n_refreshes_and_read_again_once_cleared(
    sim_archive, sim_sites, tmp_path, capsys
):
    # a private copy of the archive; one scene's item stays listed, its image files are gone
    archive = tmp_path / "archive"
    shutil.copytree(sim_archive, archive)
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    engine = store.connect(url)
    store.upgrade(engine)
    store_book(engine)
    site = sim_sites[0]
    provider = LocalArchiveProvider(archive)
    scenes = provider.search(site_grid(site).bbox_wgs84, site.plan.start, TEST_AS_OF)
    bad = scenes[-1]
    folder = next(p for p in archive.rglob(bad.scene_id) if p.is_dir())
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    for tif in folder.glob("*.tif"):
        shutil.move(tif, hidden / tif.name)
    spec = spec_for(url, archive, tmp_path / "cache", max_read_attempts=2, retries=0)

    first = run_refresh(engine, spec, [site.id], portfolio_stage=False).outcomes[0]
    assert first.status == "ok"
    rec = _record(engine, site.id, bad.scene_id)
    assert rec.reason.startswith("read error")
    assert rec.meta[READ_ATTEMPTS] == 1
    assert list_rejected_scenes(engine) == []

    # the read error may pass, so the next refresh tries it again; it fails a second time: rejected
    second = run_refresh(engine, spec, [site.id], portfolio_stage=False).outcomes[0]
    assert second.status == "ok", "the failing scene counted as new"
    assert second.counts["scenes_rejected"] == 1
    rec = _record(engine, site.id, bad.scene_id)
    assert rec.reason.startswith(f"{REASON_REJECTED}: unreadable in 2 refreshes in a row; last error: read error")
    assert not rec.used
    assert [r.scene_id for r in list_rejected_scenes(engine, site_id=site.id)] == [bad.scene_id]

    # no more retries: nothing new, and a full recompute does not read it either
    third = run_refresh(engine, spec, [site.id], portfolio_stage=False).outcomes[0]
    assert third.label == f"skipped: {NO_NEW_SCENES}"
    counting = _CountingReads(provider)
    full = refresh_site(engine, site, provider=counting, estimator=make_estimator(None), as_of=TEST_AS_OF,
                        max_read_attempts=2, retries=0)  # fmt: skip
    assert full.status == "ok"
    assert bad.scene_id not in counting.reads
    assert len(counting.reads) > 10, "the other scenes were read"
    assert _record(engine, site.id, bad.scene_id).reason.startswith(REASON_REJECTED), "still listed, reason kept"

    # operators list it, and clear it once the source is fixed
    root = ["--data-dir", str(tmp_path), "--database-url", url]
    assert run([*root, "scenes", "rejected", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["site_id"], r["scene_id"]) for r in listed] == [(site.id, bad.scene_id)]
    assert "unreadable in 2 refreshes" in listed[0]["reason"]
    for tif in hidden.glob("*.tif"):
        shutil.move(tif, folder / tif.name)
    assert run([*root, "scenes", "clear", site.id, bad.scene_id, "--by", "alice"]) == 0
    capsys.readouterr()
    assert run([*root, "scenes", "clear", site.id, bad.scene_id]) == 3, "nothing rejected left to clear"
    audit = repo.audit_entries(engine, entity_id=f"{site.id}/local/{bad.scene_id}")
    assert [(a["actor"], a["action"]) for a in audit] == [("alice", "update")]

    again = run_refresh(engine, spec, [site.id], portfolio_stage=False).outcomes[0]
    assert again.status == "ok", "cleared: new to discovery"
    rec = _record(engine, site.id, bad.scene_id)
    assert not rec.reason.startswith(("read error", REASON_REJECTED)), rec.reason
    assert list_rejected_scenes(engine) == []


def test_a_rejected_scene_stays_in_the_records_a_recompute_returns(sim_archive, sim_sites, tmp_path):
    from jobs.refresh import SceneHistory, site_progress

    site = sim_sites[0]
    provider = LocalArchiveProvider(sim_archive)
    plain = site_progress(site, provider=provider, estimator=make_estimator(None), as_of=TEST_AS_OF,
                          history=SceneHistory())  # fmt: skip
    victim = next(r for r in plain.records if r.used)
    rejected = replace(victim, used=False, reason=f"{REASON_REJECTED}: unreadable in 3 refreshes in a row")
    counting = _CountingReads(provider)
    result = site_progress(site, provider=counting, estimator=make_estimator(None), as_of=TEST_AS_OF,
                           history=SceneHistory(rejected=(rejected,)))  # fmt: skip
    assert victim.scene_id not in counting.reads
    assert [r.scene_id for r in result.records] == [r.scene_id for r in plain.records], "in time order"
    assert next(r for r in result.records if r.scene_id == victim.scene_id) == rejected
    assert result.summary.scenes_used == plain.summary.scenes_used - 1
