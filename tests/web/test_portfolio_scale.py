"""2 000 sites in a real browser: how long until the map and the table are ready, and do they stay usable.

The figures are printed in pytest's summary and written to ``artifacts/web/portfolio-2000.json``,
not asserted tightly (the issue's target is under 3 s; the bound here is generous because CI
machines are shared).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

import store
from aoi.demo import DEMO_AS_OF, synthetic_portfolio
from api.auth import new_token
from jobs.settings import Settings
from store import api_repo, progress_repo, repo, risk_repo
from tests.api.conftest import LiveServer
from tests.web.conftest import FIGURES, SCREENSHOTS, WebState, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N_SITES = 2000
#: Generous: the target is 3 s; a loaded 2-core CI box must not fail on timing noise.
READY_BOUND_S = 30.0
BANDS = ("A", "B", "C", "D", "E")
#: The page is ready when every site is on the map and the table's first page is drawn.
READY = (
    "n => document.querySelector('#map')?.dataset.sites === String(n)"
    " && document.querySelectorAll('#sites-table tbody tr').length > 0"
)


def _scores(portfolio: Any, seed: int) -> list[risk_repo.ScoreInsert]:
    """One plausible score per loan (no risk inputs needed to draw the book)."""
    rng = np.random.default_rng(seed)
    out = []
    for site in portfolio.sites:
        band = BANDS[int(rng.integers(0, len(BANDS)))]
        out.append(
            risk_repo.ScoreInsert(
                loan_id=site.loan_id,
                site_id=site.id,
                as_of=DEMO_AS_OF,
                config_version="scorecard-v1",
                config_sha256="0" * 64,
                score=float(rng.uniform(300, 800)),
                pd=float(rng.uniform(0.001, 0.5)),
                band=band,
                colour="",
                confidence=0.8,
                inputs={},
                contributions=[],
                top_drivers=[],
                missing=[],
            )
        )
    return out


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebState]:
    """Overrides the demo book: 2 000 synthetic sites, a score each, progress for a tenth, on 127.0.0.1."""
    from risk.demo import synthetic_progress

    tmp = tmp_path_factory.mktemp("big")
    db = f"sqlite:///{tmp / 'sitewatch.db'}"
    settings = Settings(data_dir=tmp / "data", database_url=db, checkpoint="", api_rate_burst=100_000)
    engine = store.connect(db)
    store.upgrade(engine)
    portfolio = synthetic_portfolio(29, N_SITES)
    repo.save_portfolio(engine, portfolio, actor="test")
    risk_repo.save_scores(engine, _scores(portfolio, 29), scored_at=datetime(2026, 11, 1, 6, tzinfo=UTC))
    for site in portfolio.sites[::10]:
        summary = synthetic_progress(site)
        if summary is not None:
            progress_repo.save_progress(
                engine, summary=summary, points=[], observations=[], records=[], inputs={"method": summary.method}
            )
    token = new_token()
    api_repo.save_key(engine, key_id=token.key_id, name="officer", role="officer", sites=None,
                      token_sha256=token.token_sha256, actor="test")  # fmt: skip
    try:
        with LiveServer(settings) as live:
            yield WebState(live.url, engine, {"officer": token.token}, "")
    finally:
        engine.dispose()


def test_two_thousand_sites_load_map_and_table_and_stay_responsive(page: Any, web: WebState) -> None:
    page.set_default_timeout(READY_BOUND_S * 1000)
    # main-thread tasks over 50 ms (what makes a page feel stuck), summed from sign-in on
    page.add_init_script(
        "window.__longTasksMs = 0; new PerformanceObserver(l => l.getEntries()"
        ".forEach(e => { window.__longTasksMs += e.duration; })).observe({ entryTypes: ['longtask'] });"
    )
    page.goto(web.url + "/")
    page.fill("#api-key", web.tokens["officer"])
    t0 = time.perf_counter()
    page.click("#signin-form button[type=submit]")
    # ready: every site on the map and the table's first page drawn
    page.wait_for_function(READY, arg=N_SITES)
    ready_s = time.perf_counter() - t0
    rows = page.locator("#sites-table tbody tr").count()
    sites_fetch_ms = page.evaluate(
        "() => performance.getEntriesByType('resource').find(e => e.name.endsWith('/v1/sites')).duration"
    )
    long_ms = page.evaluate("() => window.__longTasksMs")
    figures = {
        "sites": N_SITES,
        "ready_s": round(ready_s, 2),
        "get_sites_s": round(sites_fetch_ms / 1000, 2),
        "long_tasks_s": round(long_ms / 1000, 2),
        "table_rows_in_dom": rows,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    FIGURES.append(
        f"2000-site portfolio: map and table ready in {ready_s:.2f} s (GET /v1/sites {figures['get_sites_s']} s, "
        f"main-thread long tasks {figures['long_tasks_s']} s, load average {figures['load_average_1min']})"
    )
    assert ready_s < READY_BOUND_S
    assert "2000 sites" in page.locator("#portfolio-status").inner_text()
    # the DOM stays small: markers are drawn on a canvas, the table shows a page at a time
    assert page.locator(".leaflet-marker-icon").count() == 0
    assert page.locator("path.site-outline").count() == 0
    assert rows <= 200
    # still responsive: sorting the whole book flips the order at once
    header = page.locator("#sites-table th[data-key=score]")
    before = header.get_attribute("aria-sort")
    t1 = time.perf_counter()
    header.locator("button").click()
    page.wait_for_function(
        "was => document.querySelector('#sites-table th[data-key=score]').getAttribute('aria-sort') !== was",
        arg=before,
    )
    sort_s = time.perf_counter() - t1
    scores = [
        float(s) for s in page.locator("#sites-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.score)")
    ]
    assert scores == sorted(scores, reverse=header.get_attribute("aria-sort") == "descending")
    figures["sort_s"] = round(sort_s, 2)
    FIGURES.append(f"sort 2000 rows: {sort_s:.2f} s")
    first = page.locator("#sites-table tbody tr").first.get_attribute("data-site-id")
    page.locator("#sites-pager button", has_text="Next").click()
    page.wait_for_selector("#sites-pager[data-page='1']")
    assert page.locator("#sites-table tbody tr").first.get_attribute("data-site-id") != first
    assert "rows 101–200 of 2000" in page.locator("#sites-pager").inner_text()
    assert page.locator("#map").get_attribute("data-renderer") == "canvas"
    # filtering by band redraws map and table from the server's answer
    with web.client() as http:
        n_e = len(http.get("/v1/sites", params={"band": "E"}).json()["features"])
    t2 = time.perf_counter()
    page.select_option("#filter-band", "E")
    page.wait_for_function("n => document.querySelector('#map').dataset.sites === String(n)", arg=n_e)
    figures["filter_s"] = round(time.perf_counter() - t2, 2)
    assert page.locator("#sites-table tbody tr[data-band=E]").count() == min(n_e, 100)
    FIGURES.append(f"filter to band E ({n_e} sites): {figures['filter_s']} s")
    screenshot(page, "portfolio-2000.png")
    # zoomed in on one site, its marker carries the band letter again (and takes the keyboard)
    site_id = page.locator("#sites-table tbody tr").first.get_attribute("data-site-id")
    page.locator("#sites-table tbody tr").first.click()
    page.wait_for_selector(f"#site[data-loaded='{site_id}']")
    marker = page.locator(f".leaflet-marker-icon.site-marker[title*='({site_id})']")
    marker.wait_for()
    assert marker.locator(".badge").inner_text() == "E"
    # once more on the warm server: its first answer also paid one-off costs (imports, caches)
    t3 = time.perf_counter()
    page.goto(web.url + "/")  # the key stays in the tab: the page starts without a sign-in
    page.wait_for_function(READY, arg=N_SITES)
    figures["warm_ready_s"] = round(time.perf_counter() - t3, 2)
    warm_fetch_ms = page.evaluate(
        "() => performance.getEntriesByType('resource').find(e => e.name.endsWith('/v1/sites')).duration"
    )
    figures["warm_get_sites_s"] = round(warm_fetch_ms / 1000, 2)
    FIGURES.append(
        f"2000-site portfolio on a warm server (page reloaded): ready in {figures['warm_ready_s']} s "
        f"(GET /v1/sites {figures['warm_get_sites_s']} s)"
    )
    assert figures["warm_ready_s"] < READY_BOUND_S
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "portfolio-2000.json").write_text(json.dumps(figures, indent=1) + "\n")
