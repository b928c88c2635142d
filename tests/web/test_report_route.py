"""The site view's own endpoints over HTTP: the PDF report, daily activity and case notes, with roles and scope."""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest

from aoi.demo import demo_portfolio
from api.cli import run
from store import risk_repo
from tests.web.conftest import SENSOR_SITE, WebState

OUTSIDE_SCOPE = SENSOR_SITE  # the scoped key sees de-rgb-hall and es-sev-solar only


def _loan(site_id: str) -> str:
    return next(s.loan_id for s in demo_portfolio().sites if s.id == site_id)


def _open_case_id(web: WebState, site_id: str) -> int:
    with web.client() as http:
        items = http.get("/v1/cases", params={"loan_id": _loan(site_id)}).json()["items"]
    assert items, f"the fixture opens a case for {site_id}"
    return int(items[0]["id"])


def test_report_pdf_is_a_pdf_attachment_with_the_sites_name(web: WebState) -> None:
    with web.client("admin") as http:
        r = http.get(f"/v1/sites/{SENSOR_SITE}/report.pdf", timeout=60)
        progress = http.get(f"/v1/sites/{SENSOR_SITE}/progress").json()["summary"]
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == f'attachment; filename="{SENSOR_SITE}-report.pdf"'
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(r.content)).pages)
    name = next(s.name for s in demo_portfolio().sites if s.id == SENSOR_SITE)
    assert f"SiteWatch site report: {name}" in text
    assert f"Slip: {progress['slip_days']} days behind plan" in text
    assert "Stalled: yes" in text
    assert "No scene drawn" in text  # both of its scenes were skipped: said, not drawn


@pytest.mark.parametrize(
    ("key", "site_id", "status"),
    [
        ("scoped", OUTSIDE_SCOPE, 404),  # out of scope reads like a missing site
        ("officer", "no-such-site", 404),
        ("risk_engine", SENSOR_SITE, 403),
        ("ingest", SENSOR_SITE, 403),
    ],
)
def test_report_and_activity_refuse_what_the_key_may_not_see(
    web: WebState, key: str, site_id: str, status: int
) -> None:
    with web.client(key) as http:
        for path in (f"/v1/sites/{site_id}/report.pdf", f"/v1/sites/{site_id}/activity"):
            r = http.get(path)
            assert r.status_code == status, (path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")


def test_activity_covers_the_days_asked_for_ending_on_the_progress_day(web: WebState) -> None:
    with web.client() as http:
        as_of = http.get(f"/v1/sites/{SENSOR_SITE}/progress").json()["summary"]["as_of"]
        body = http.get(f"/v1/sites/{SENSOR_SITE}/activity", params={"days": 14}).json()
        quiet = http.get("/v1/sites/de-rgb-hall/activity", params={"days": 14}).json()
        bad = http.get(f"/v1/sites/{SENSOR_SITE}/activity", params={"days": 0})
    assert body["as_of"] == as_of
    assert body["count"] == 14
    assert body["items"][-1]["day"] == as_of
    assert all(d["readings"] > 0 for d in body["items"])
    assert all(d["activity_index"] is None and d["readings"] == 0 for d in quiet["items"])  # no sensors there
    assert bad.status_code == 422
    assert "days" in bad.text


def test_case_note_is_kept_with_its_author_and_refused_when_empty_or_out_of_scope(web: WebState) -> None:
    case_id = _open_case_id(web, SENSOR_SITE)
    with web.client() as http:
        before = http.get(f"/v1/cases/{case_id}/notes").json()["count"]
        created = http.post(f"/v1/cases/{case_id}/notes", json={"note": "borrower called back"})
        empty = http.post(f"/v1/cases/{case_id}/notes", json={"note": ""})
        after = http.get(f"/v1/cases/{case_id}/notes").json()
    assert created.status_code == 201, created.text
    assert created.json()["items"][0]["note"] == "borrower called back"
    assert empty.status_code == 422
    assert "note" in empty.text
    assert after["count"] == before + 1
    assert after["items"][-1]["by"].endswith("(officer)")
    with web.client("scoped") as http:
        assert http.get(f"/v1/cases/{case_id}/notes").status_code == 404
        assert http.post(f"/v1/cases/{case_id}/notes", json={"note": "x"}).status_code == 404
    with web.client("risk_engine") as http:
        assert http.post(f"/v1/cases/{case_id}/notes", json={"note": "x"}).status_code == 403
    with web.client() as http:
        assert http.get(f"/v1/cases/{case_id}/notes").json()["count"] == before + 1  # refusals stored nothing
        assert http.get("/v1/cases/999999/notes").status_code == 404


def test_cli_writes_the_same_report_to_a_file_and_exits_nonzero_for_an_unknown_site(
    web: WebState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports" / "hall.pdf"
    base = ["--data-dir", str(web.extra["data_dir"]), "--database-url", str(web.engine.url)]
    assert run([*base, "report", "de-rgb-hall", "--out", str(out)]) == 0
    reader = pypdf.PdfReader(out)
    text = "\n".join(p.extract_text() for p in reader.pages)
    with web.client() as http:
        s = http.get("/v1/sites/de-rgb-hall/progress").json()["summary"]
    assert f"Slip: {s['slip_days']} days" in text
    assert "Latest clear scene 2026-10-01" in text  # the CLI reads the same scene cache as the server
    assert any(page.images for page in reader.pages)
    assert str(out) in capsys.readouterr().out
    assert run([*base, "report", "no-such-site", "--out", str(tmp_path / "x.pdf")]) == 3  # not found
    assert not (tmp_path / "x.pdf").exists()


def test_note_on_a_closed_case_is_a_conflict_and_its_notes_stay_readable(web: WebState) -> None:
    case_id = _open_case_id(web, SENSOR_SITE)
    risk_repo.close_case(web.engine, case_id, by="test", note="works restarted")
    with web.client() as http:
        r = http.post(f"/v1/cases/{case_id}/notes", json={"note": "too late"})
        notes = http.get(f"/v1/cases/{case_id}/notes")
    assert r.status_code == 409
    assert "closed" in r.json()["detail"]
    assert notes.status_code == 200
    assert "too late" not in notes.text
