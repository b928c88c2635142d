"""The PDF site report: figures equal the stored ones, a real map snapshot, and the same bytes twice."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pypdf
import pytest

from aoi.demo import demo_portfolio
from aoi.records import ProgressPoint, SceneRecord
from jobs.demo import load_simulated_readings
from jobs.pipeline import run_refresh
from jobs.report import (
    MapSnapshot,
    SiteReport,
    gather_site_report,
    key_figures,
    map_snapshot,
    newest_clear_scene,
    report_pdf,
)
from jobs.settings import Settings
from risk.demo import synthetic_progress
from store import progress_repo
from tests.jobs.refresh_helpers import TEST_AS_OF, spec_for, store_book

GENERATED = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)


def _text(pdf: bytes) -> tuple[str, int]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    # matplotlib shares one resource dictionary between pages: count each image once
    return text, len({image.name for page in reader.pages for image in page.images})


def _record(site_id: str, day: int, *, used: bool, valid: float) -> SceneRecord:
    at = datetime(2026, 10, day, 10, tzinfo=UTC)
    return SceneRecord(site_id, "local", f"S2_{day:02d}", at, 5.0, valid, used, "" if used else "too cloudy")


def _hand_made_report() -> SiteReport:
    site = next(s for s in demo_portfolio().sites if s.properties["fate"] == "stalled")
    summary = synthetic_progress(site)
    assert summary is not None
    points = tuple(
        ProgressPoint(summary.as_of - timedelta(days=30 * k), 50.0, 40.0 - k, 37.0 - k, 43.0 - k) for k in range(4)
    )[::-1]
    rgb = np.zeros((40, 50, 3), dtype=np.uint8)
    rgb[10:30, 10:40] = (200, 190, 180)
    snapshot = MapSnapshot(_record(site.id, 3, used=True, valid=0.99), rgb, None, (), (), ("no change overlay: test",))
    return SiteReport(
        site=site,
        borrower="Borrower Ltd",
        band=None,
        summary=summary,
        points=points,
        inputs={"method": summary.method, "inputs_sha256": "ab" * 32},
        scenes=(_record(site.id, 1, used=False, valid=0.1), _record(site.id, 3, used=True, valid=0.99)),
        activity=(),
        scores=(),
        alerts=(),
        case=None,
        case_notes=(),
        snapshot=snapshot,
        generated_at_utc=GENERATED,
    )


def test_report_pdf_prints_the_summary_figures_and_is_byte_identical_twice() -> None:
    report = _hand_made_report()
    pdf = report_pdf(report)
    assert pdf.startswith(b"%PDF-")
    assert report_pdf(report) == pdf  # no creation date: same report, same bytes
    text, images = _text(pdf)
    s = report.summary
    assert s is not None
    assert re.search(rf"Slip: {s.slip_days} days behind plan", text)
    observed = re.search(r"Percent complete: ([\d.]+) % observed vs ([\d.]+) % planned", text)
    assert observed, text
    assert float(observed.group(1)) == round(s.observed_pct, 2)
    assert float(observed.group(2)) == round(s.planned_pct, 2)
    assert "Stalled: yes" in text
    assert "Forecast completion: none (stalled)" in text
    assert "scenes: " + f"{s.scenes_used} used, {s.scenes_skipped} skipped" in text
    assert "Generated 2026-11-02 08:30 UTC" in text
    assert "no change overlay: test" in text
    assert images == 1  # the true-colour snapshot


def test_key_figures_say_so_when_nothing_is_computed() -> None:
    report = _hand_made_report()
    bare = SiteReport(**{**{f: getattr(report, f) for f in report.__dataclass_fields__}, "summary": None})
    figures = dict(key_figures(bare))
    assert figures["Percent complete"] == "no progress computed yet"
    assert figures["Score"] == "not scored"
    assert bare.as_of == GENERATED.date()


def test_newest_clear_scene_prefers_a_clear_one_over_a_newer_hazy_one() -> None:
    records = [
        _record("s", 1, used=True, valid=0.99),
        _record("s", 5, used=True, valid=0.80),
        _record("s", 9, used=False, valid=0.0),
    ]
    assert newest_clear_scene(records) == records[0]
    assert newest_clear_scene(records[1:]) == records[1]  # no clear one: the newest used
    assert newest_clear_scene(records[2:]) is None


@pytest.mark.integration
def test_report_of_a_refreshed_site_draws_imagery_overlay_and_the_stored_figures(
    engine, db_url, sim_archive, sim_sites, tmp_path
) -> None:
    site = next(s for s in sim_sites if s.properties["fate"] == "stalled")
    store_book(engine)
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url, archive_dir=sim_archive, checkpoint="")
    load_simulated_readings(engine, [site], TEST_AS_OF - timedelta(days=60), TEST_AS_OF, seed=3)
    batch = run_refresh(engine, spec_for(db_url, sim_archive, settings.cache_dir), [site.id])
    assert [o.status for o in batch.outcomes] == ["ok"]

    report = gather_site_report(engine, settings, site.id, now=GENERATED, activity_days=30)
    latest = progress_repo.latest_progress(engine, site.id)
    assert latest is not None
    stored = latest[0]
    assert report.summary == stored
    # the snapshot: the newest clear scene in true colour, change drawn where the works are
    snap = report.snapshot
    assert snap.scene is not None
    assert snap.scene.used
    assert snap.scene == newest_clear_scene(report.scenes)
    assert snap.rgb is not None, snap.notes
    assert snap.overlay is not None, snap.notes
    assert snap.rgb.shape[:2] == snap.overlay.shape[:2]
    assert (snap.overlay[..., 3] > 0).any()
    assert [name for name, _ in snap.footprints_px] == [p.name for p in site.plan.phases]
    # sensors: 30 days, some of them active; the loan was scored
    assert len(report.activity) == 30
    assert report.activity[-1].day == stored.as_of
    assert any(f.activity_index is not None for f in report.activity)
    assert report.scores
    assert report.scores[-1].data.loan_id == site.loan_id

    text, images = _text(report_pdf(report))
    assert images == 1  # matplotlib composites the true colour and the overlay into one picture
    assert "change overlay in orange" in text
    slip = "–" if stored.slip_days is None else str(stored.slip_days)
    assert f"Slip: {slip}" in text
    assert f"As of: {stored.as_of}" in text
    assert f"{stored.scenes_used} used, {stored.scenes_skipped} skipped" in text
    assert stored.method in text
    assert date(2026, 11, 2).isoformat() in text


def test_snapshot_names_what_is_missing_when_the_scene_cannot_be_read(tmp_path) -> None:
    site = next(s for s in demo_portfolio().sites if s.properties["fate"] == "stalled")
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path}/s.db", checkpoint="")
    snap = map_snapshot(settings, site, [_record(site.id, 3, used=True, valid=0.99)])
    assert snap.scene is not None
    assert snap.rgb is None
    assert snap.overlay is None
    assert [n.split(":")[0] for n in snap.notes] == ["true colour unavailable", "no change overlay"]
    assert len(snap.footprints_px) == len(site.plan.phases)
    report = SiteReport(**{**{f: getattr(_hand_made_report(), f) for f in SiteReport.__dataclass_fields__},
                           "snapshot": snap})  # fmt: skip
    text, images = _text(report_pdf(report))
    assert images == 0
    assert "true colour unavailable" in text
