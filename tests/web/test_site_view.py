"""The site view in a real browser: activity chart, score history, case notes, date slider, overlay, PDF."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pypdf
import pytest

from tests.web.conftest import SENSOR_SITE, WebState, screenshot, sign_in

pytestmark = pytest.mark.browser

TILED = "de-rgb-hall"


def _open(page: Any, web: WebState, site_id: str) -> None:
    sign_in(page, web)
    page.wait_for_selector("body[data-ready=true]")
    row = page.locator(f"#sites-table tbody tr[data-site-id='{site_id}']")
    row.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#site[data-loaded='{site_id}']")


def test_site_view_charts_activity_and_score_history_and_takes_a_case_note(page: Any, web: WebState) -> None:
    _open(page, web, SENSOR_SITE)
    with web.client() as http:
        activity = http.get(f"/v1/sites/{SENSOR_SITE}/activity").json()
        loan_id = http.get(f"/v1/sites/{SENSOR_SITE}").json()["properties"]["loan_id"]
        score = http.get(f"/v1/loans/{loan_id}/score").json()
        case = http.get("/v1/cases", params={"loan_id": loan_id}).json()["items"][0]
    # daily sensor activity: one bar per day, the API's values on them
    svg = page.locator("#activity-chart svg")
    assert svg.get_attribute("data-as-of") == activity["as_of"]
    assert int(svg.get_attribute("data-days")) == activity["count"] == 90
    with_data = [d for d in activity["items"] if d["readings"] > 0]
    assert with_data, "the sensor site reports"
    assert int(svg.get_attribute("data-days-with-data")) == len(with_data)
    bars = svg.locator("rect.day").evaluate_all(
        "rs => rs.map(r => [r.dataset.day, r.dataset.activityIndex === '' ? null : +r.dataset.activityIndex])"
    )
    assert bars == [[d["day"], d["activity_index"]] for d in activity["items"]]
    hours = svg.locator("rect.day").evaluate_all(
        "rs => rs.map(r => r.dataset.equipmentHours === '' ? null : +r.dataset.equipmentHours)"
    )
    assert hours == [d["equipment_hours"] for d in activity["items"]]
    assert svg.locator("path[data-series=workforce]").count() == 1
    assert f"{len(with_data)} of 90 days" in page.locator("#activity-summary").inner_text()
    # score history: one point per stored score, with its band
    points = page.locator("#score-history .score-point").evaluate_all(
        "gs => gs.map(g => [+g.dataset.score, g.dataset.band])"
    )
    assert points == [[h["score"], h["band"]] for h in score["history"]]
    # the case, its tasks, and a note that lands in the API
    box = page.locator("#case")
    assert box.get_attribute("data-case-id") == str(case["id"])
    assert box.locator(".tasks li").count() == len(case["tasks"])
    box.locator("input[name=note]").fill("site visit booked for Monday")
    box.locator("button", has_text="Add note").click()
    page.wait_for_selector("#case .notes li:has-text('site visit booked for Monday')")
    assert page.locator("#case-status").inner_text() == f"Note added to case {case['id']}."
    with web.client() as http:
        notes = http.get(f"/v1/cases/{case['id']}/notes").json()["items"]
    assert notes[-1]["note"] == "site visit booked for Monday"
    assert notes[-1]["by"].endswith("(officer)")
    page.locator("#activity-chart").scroll_into_view_if_needed()
    screenshot(page, "site-activity-case.png")


def test_pdf_link_downloads_the_report_with_the_api_figures_and_the_picture(
    page: Any, web: WebState, tmp_path: Path
) -> None:
    _open(page, web, TILED)
    with page.expect_download(timeout=60_000) as info:
        page.click("#pdf-link")
    download = info.value
    assert download.suggested_filename == f"{TILED}-report.pdf"
    path = tmp_path / "report.pdf"
    download.save_as(path)
    reader = pypdf.PdfReader(io.BytesIO(path.read_bytes()))
    text = "\n".join(p.extract_text() for p in reader.pages)
    with web.client() as http:
        s = http.get(f"/v1/sites/{TILED}/progress").json()["summary"]
    match = re.search(r"Percent complete: ([\d.]+) % observed vs ([\d.]+) % planned", text)
    assert match, text[:2000]
    assert float(match.group(1)) == s["observed_pct"]
    assert float(match.group(2)) == s["planned_pct"]
    assert f"Slip: {s['slip_days']} days" in text
    assert f"As of: {s['as_of']}" in text
    assert "Latest clear scene 2026-10-01" in text  # the one used scene, drawn in true colour
    assert any(page_.images for page_ in reader.pages)
    assert page.locator("#download-status").inner_text() == ""  # no error left behind


def test_date_slider_walks_every_scene_by_keyboard_and_the_overlay_toggles(page: Any, web: WebState) -> None:
    _open(page, web, TILED)
    slider = page.locator("#scene-slider")
    with web.client() as http:
        scenes = http.get(f"/v1/sites/{TILED}/scenes").json()["items"]
    scenes.sort(key=lambda s: s["acquired_at"])
    assert slider.get_attribute("max") == str(len(scenes) - 1)
    slider.focus()
    page.keyboard.press("Home")
    for k, scene in enumerate(scenes):
        if k:
            page.keyboard.press("ArrowRight")
        assert slider.input_value() == str(k)
        current = page.locator("#scene-list li.current")
        assert current.get_attribute("data-scene-id") == scene["scene_id"]
        caption = page.locator("#scene-caption").inner_text()
        assert caption.startswith(scene["acquired_at"][:10])
        assert ("skipped" in caption) is (not scene["used"])
        assert ("skipped" in (slider.get_attribute("aria-valuetext") or "")) is (not scene["used"])
    # on the newest (used) scene the imagery is drawn; on a skipped one the overlay says why it is absent
    page.wait_for_selector(".true-colour img")
    page.keyboard.press("Home")
    page.check("#change-toggle")
    page.wait_for_function("() => document.querySelector('#change-status').textContent.includes('skipped scene')")
    assert page.locator(".change-overlay").count() == 0
    page.uncheck("#change-toggle")
    page.wait_for_function("() => document.querySelector('#change-status').textContent === ''")
