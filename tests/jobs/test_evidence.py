import json

import numpy as np
import rasterio
from PIL import Image

from imagery.providers.local import LocalArchiveProvider
from jobs.evidence import write_evidence
from jobs.progress import compute_site_progress, make_estimator
from tests.jobs.conftest import AS_OF


def test_evidence_pack_is_complete_traceable_and_reproducible(sim_archive, sim_sites, tmp_path):
    site = sim_sites[0]
    est = make_estimator(None)
    provider = LocalArchiveProvider(sim_archive)
    result = compute_site_progress(site, provider=provider, estimator=est, as_of=AS_OF)
    first = write_evidence(site, result, tmp_path / "a", command="cmd")
    again = compute_site_progress(site, provider=provider, estimator=est, as_of=AS_OF)
    second = write_evidence(site, again, tmp_path / "b", command="cmd")
    assert first.read_bytes() == second.read_bytes()

    manifest = json.loads(first.read_text())
    assert manifest["site"]["id"] == site.id
    assert manifest["figures"]["observed_pct"] == result.summary.observed_pct
    scenes = manifest["scenes"]
    assert len(scenes) == len(result.records)
    skipped = [s for s in scenes if not s["used"]]
    assert skipped
    assert all(s["reason"] for s in skipped)
    used = [s for s in scenes if s["used"]]
    assert all("offset" in s["harmonisation"] for s in used)
    assert manifest["latest_scene"] in {s["scene_id"] for s in used}
    assert set(manifest["baseline_scenes"]) <= {s["scene_id"] for s in used}

    for name in manifest["files"]:
        assert (tmp_path / "a" / name).is_file(), name
    before = np.asarray(Image.open(tmp_path / "a" / "before.png"))
    assert before.shape == (result.grid.height, result.grid.width, 3)
    with rasterio.open(tmp_path / "a" / "change.tif") as cog:
        assert cog.crs.to_string() == result.grid.crs
        assert cog.transform == result.grid.transform
        assert float(cog.tags()["threshold"]) == result.threshold
        prob = cog.read(1)
    assert np.nanmax(prob) >= result.threshold  # the works show as change


def test_evidence_pack_shows_the_sensor_days_behind_a_stall_flag(sim_archive, sim_sites, tmp_path):
    from datetime import date, timedelta

    from aoi.records import SiteWork

    site = next(s for s in sim_sites if s.properties["fate"] == "stalled")  # stopped on 15 June
    as_of = date(2026, 7, 15)
    work = [SiteWork(date(2026, 3, 1) + timedelta(days=k), 1.0) for k in range(106)]
    work += [SiteWork(date(2026, 6, 15) + timedelta(days=k), 0.03) for k in range(31)]
    provider = LocalArchiveProvider(sim_archive)
    result = compute_site_progress(site, provider=provider, estimator=make_estimator(None), as_of=as_of, activity=work)
    manifest = json.loads(write_evidence(site, result, tmp_path, command="cmd").read_text())
    assert "sensors" in manifest["figures"]["stall_witnesses"]
    assert manifest["site_work"] == [[(as_of - timedelta(days=20 - k)).isoformat(), 0.03] for k in range(21)]
    assert manifest["idle_since"] == "2026-06-15"
