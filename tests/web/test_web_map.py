"""The officer's web map in a real browser: sign-in, portfolio, site view, acknowledge, CSV, refusals."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from aoi.demo import demo_portfolio
from tests.web.conftest import WebState, screenshot, sign_in

pytestmark = pytest.mark.browser

STALLED = "in-pnq-factory"
CANCELLED = "br-cps-warehouse"
TILED = "de-rgb-hall"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "web-map.png"


def _ready(page: Any) -> None:
    page.wait_for_selector("body[data-ready=true]")


def _open_site(page: Any, site_id: str) -> None:
    row = page.locator(f"#sites-table tbody tr[data-site-id='{site_id}']")
    row.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#site[data-loaded='{site_id}']")


def test_sign_in_draws_every_demo_site_on_the_map_and_in_the_table(page: Any, web: WebState) -> None:
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url.removeprefix(web.url)))
    sign_in(page, web)
    _ready(page)
    site_ids = {s.id for s in demo_portfolio().sites}
    assert page.locator(".leaflet-marker-icon.site-marker").count() == len(site_ids)
    assert page.locator("path.site-outline").count() == len(site_ids)
    rows = page.locator("#sites-table tbody tr")
    assert {rows.nth(i).get_attribute("data-site-id") for i in range(rows.count())} == site_ids
    # every marker carries its band as text, and it matches the API's band
    with web.client() as http:
        bands = {f["properties"]["id"]: f["properties"]["band"] for f in http.get("/v1/sites").json()["features"]}
    for site_id, band in bands.items():
        assert page.locator(f"#sites-table tr[data-site-id='{site_id}']").get_attribute("data-band") == band
    assert sorted(page.locator(".site-marker .badge").all_inner_texts()) == sorted(bands.values())
    # progress cells filled in from the portfolio summary: one request, none per site
    page.wait_for_function("() => !document.querySelector('#sites-table tbody').textContent.includes('– / –')")
    assert [u for u in asked if u.startswith("/v1/progress")] == ["/v1/progress?limit=1000"]
    assert not [u for u in asked if u.endswith("/progress") and u.startswith("/v1/sites/")]
    with web.client() as http:
        progress = {p["site_id"]: p for p in http.get("/v1/progress").json()["items"]}
    assert set(progress) == site_ids
    for site_id, p in progress.items():
        cells = page.locator(f"#sites-table tr[data-site-id='{site_id}'] td")
        assert cells.nth(2).inner_text().startswith(f"{p['observed_pct']:.1f} / {p['planned_pct']:.1f}")
        assert ("stalled" in cells.nth(2).inner_text()) == p["stalled"]
        assert cells.nth(3).inner_text() == str(p["slip_days"])
    screenshot(page, "portfolio.png")


def test_table_sorts_by_score_both_ways(page: Any, web: WebState) -> None:
    sign_in(page, web)
    _ready(page)
    header = page.locator("#sites-table th[data-key=score]")
    for _ in range(2):
        header.locator("button").click()
        order = header.get_attribute("aria-sort")
        rows = page.locator("#sites-table tbody tr")
        scores = [float(s) for s in rows.evaluate_all("rs => rs.map(r => r.dataset.score)")]
        assert scores == sorted(scores, reverse=order == "descending"), order
        assert order in {"ascending", "descending"}


def test_filters_by_band_and_text_narrow_map_and_table(page: Any, web: WebState) -> None:
    sign_in(page, web)
    _ready(page)
    page.select_option("#filter-band", "E")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#sites-table tbody tr')].every(r => r.dataset.band === 'E')"
    )
    n = page.locator("#sites-table tbody tr").count()
    assert n >= 1
    assert page.locator(".leaflet-marker-icon.site-marker").count() == n
    page.select_option("#filter-band", "")
    page.fill("#filter-q", "pnq")
    page.wait_for_function("() => document.querySelectorAll('#sites-table tbody tr').length === 1")
    assert page.locator("#sites-table tbody tr").get_attribute("data-site-id") == STALLED


def test_enter_on_stalled_site_opens_chart_with_the_api_figures(page: Any, web: WebState) -> None:
    sign_in(page, web)
    _ready(page)
    _open_site(page, STALLED)
    assert page.url.endswith(f"#/site/{STALLED}")
    with web.client() as http:
        progress = http.get(f"/v1/sites/{STALLED}/progress").json()
    s = progress["summary"]
    svg = page.locator("#progress-chart svg")
    assert float(svg.get_attribute("data-observed-pct")) == s["observed_pct"]
    assert float(svg.get_attribute("data-planned-pct")) == s["planned_pct"]
    assert int(svg.get_attribute("data-slip-days")) == s["slip_days"]
    assert svg.get_attribute("data-stalled") == "true"
    points = svg.locator("circle.point").evaluate_all(
        "cs => cs.map(c => [c.dataset.on, +c.dataset.observedPct, +c.dataset.lowerPct, +c.dataset.upperPct])"
    )
    assert points == [[p["on"], p["observed_pct"], p["lower_pct"], p["upper_pct"]] for p in progress["series"]]
    for series in ("planned", "observed", "confidence"):
        assert svg.locator(f"path[data-series={series}]").count() == 1
    assert "stalled" in page.locator("#progress-summary").inner_text()
    # scenes: both recorded ones were skipped, shown greyed with the reason, and no imagery drawn
    skipped = page.locator("#scene-list li.skipped")
    assert skipped.count() == 2
    assert "too cloudy" in skipped.first.inner_text()
    assert page.locator(".true-colour").count() == 0
    # score with its drivers; planned footprints outlined per phase
    assert page.locator("#score .score-head").get_attribute("data-band") == "E"
    assert page.locator("#score tr[data-driver=stall]").count() == 1
    site = next(x for x in demo_portfolio().sites if x.id == STALLED)
    assert page.locator("path.phase-footprint").count() == len(site.plan.phases)
    page.wait_for_timeout(900)  # let the fly-to settle for the picture
    screenshot(page, "site-stalled.png")


def test_cancelled_site_names_its_reversal_under_the_chart(page: Any, web: WebState) -> None:
    sign_in(page, web)
    _ready(page)
    _open_site(page, CANCELLED)
    with web.client() as http:
        events = http.get(f"/v1/sites/{CANCELLED}/progress").json()["summary"]["events"]
    assert [e["kind"] for e in events] == ["reversal"]
    text = page.locator("#progress-summary").inner_text()
    assert f"reversal on {events[0]['on']}: {events[0]['detail']}" in text


def test_acknowledge_alert_updates_it_here_and_in_the_api(page: Any, web: WebState) -> None:
    sign_in(page, web)
    _ready(page)
    before = int(page.locator(f"#sites-table tr[data-site-id='{STALLED}'] td").nth(6).inner_text())
    _open_site(page, STALLED)
    item = page.locator("#alerts li[data-status=open]").first
    alert_id = item.get_attribute("data-alert-id")
    item.locator("input[name=note]").fill("called the borrower")
    item.locator("button", has_text="Acknowledge").click()
    done = page.locator(f"#alerts li[data-alert-id='{alert_id}']")
    page.wait_for_selector(f"#alerts li[data-alert-id='{alert_id}'][data-status=acknowledged]")
    assert "called the borrower" in done.inner_text()
    assert done.locator("button").count() == 0
    with web.client() as http:
        stored = next(a for a in http.get("/v1/alerts").json()["items"] if str(a["id"]) == alert_id)
    assert stored["status"] == "acknowledged"
    assert stored["acknowledged_by"].endswith("(officer)")
    # back on the portfolio, the open-alert count has gone down
    page.click("#back")
    cell = page.locator(f"#sites-table tr[data-site-id='{STALLED}'] td").nth(6)
    page.wait_for_function(
        "([id, n]) => document.querySelector(`tr[data-site-id='${id}']`).cells[6].textContent.trim() === n",
        arg=[STALLED, str(before - 1)],
    )
    assert int(cell.inner_text()) == before - 1


def test_download_progress_csv_has_the_api_header(page: Any, web: WebState, tmp_path: Path) -> None:
    sign_in(page, web)
    _ready(page)
    _open_site(page, STALLED)
    with page.expect_download() as info:
        page.click("#csv-link")
    download = info.value
    assert download.suggested_filename == f"{STALLED}-progress.csv"
    path = tmp_path / "progress.csv"
    download.save_as(path)
    lines = path.read_text().splitlines()
    assert lines[0] == "on,planned_pct,observed_pct,lower_pct,upper_pct"
    assert len(lines) == 5


def test_newest_used_scene_is_drawn_from_tiles_fetched_with_the_key(page: Any, web: WebState) -> None:
    sign_in(page, web)
    _ready(page)
    _open_site(page, TILED)
    slider = page.locator("#scene-slider")
    assert slider.get_attribute("max") == "2"
    assert slider.input_value() == "2"  # the newest used scene, after two skipped ones
    assert page.locator("#scene-list li.current").get_attribute("data-scene-id") == web.scene_id
    page.wait_for_function(
        "() => [...document.querySelectorAll('.true-colour img')]"
        ".some(i => i.src.startsWith('blob:') && i.naturalWidth === 256)"
    )
    page.wait_for_timeout(900)
    path = screenshot(page, "site.png")
    if not DOCS_SCREENSHOT.exists():  # README's picture: delete it to refresh it
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOT)
    # moving the slider to a skipped scene removes the imagery and says why
    slider.fill("0")
    page.wait_for_function("() => document.querySelectorAll('.true-colour').length === 0")
    assert re.search(r"skipped: too cloudy", page.locator("#scene-caption").inner_text())
    # the change overlay toggle answers (here the archive has no baseline, so it says so)
    slider.fill("2")
    page.check("#change-toggle")
    page.wait_for_function("() => document.querySelector('#change-status').textContent.length > 0")


@pytest.mark.parametrize(("key", "status"), [("risk_engine", "403"), ("revoked", "401"), (None, "401")])
def test_refused_key_sees_a_message_and_nothing_else(page: Any, web: WebState, key: str | None, status: str) -> None:
    sign_in(page, web, key or "officer", token=None if key else "not-a-key")
    page.wait_for_selector("#signin-error:not(:empty)")
    assert status in page.locator("#signin-error").inner_text()
    assert page.locator("#app").is_hidden()
    assert page.locator("#sites-table tbody tr").count() == 0
    assert page.locator(".site-marker").count() == 0
    assert page.evaluate("sessionStorage.getItem('sitewatch.apiKey')") is None
