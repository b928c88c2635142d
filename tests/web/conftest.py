"""A live server over the demo book and a headless Debian Chromium driven by Playwright.

Browser tests skip with a reason when Playwright or ``/usr/bin/chromium`` is missing; CI installs
both (``pip install -e .[dev]`` and ``apt-get install -y chromium``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

import store
from aoi.demo import DEMO_AS_OF, demo_portfolio
from jobs.demo import load_simulated_readings
from jobs.settings import Settings
from tests.api.conftest import LiveServer, _store_state

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
#: The site whose sensors report in the web tests (the stalled one: activity chart, case and notes).
SENSOR_SITE = "in-pnq-factory"
#: Screenshots for people (gitignored); README shows a copy under docs/.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "web"


@dataclass
class WebState:
    """The live server, its database and a key per role (see tests/api/conftest.py)."""

    url: str
    engine: Engine
    tokens: dict[str, str]
    scene_id: str
    extra: dict[str, Any] = field(default_factory=dict)

    def client(self, key: str = "officer") -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20, headers={"Authorization": f"Bearer {self.tokens[key]}"})


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless; skipped cleanly where it or Playwright is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebState]:
    """The demo book with synthetic progress, scores, alerts, one tiled scene and one site's sensors, on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("web")
    db = f"sqlite:///{tmp / 'sitewatch.db'}"
    settings = Settings(data_dir=tmp / "data", database_url=db, checkpoint="", api_rate_burst=10_000)
    engine = store.connect(db)
    store.upgrade(engine)
    state = _store_state(engine, settings)
    sensed = [s for s in demo_portfolio().sites if s.id == SENSOR_SITE]
    load_simulated_readings(engine, sensed, DEMO_AS_OF - timedelta(days=120), DEMO_AS_OF, seed=1)
    try:
        with LiveServer(settings) as live:
            yield WebState(live.url, engine, state["tokens"], state["scene_id"], {"data_dir": settings.data_dir})
    finally:
        engine.dispose()


@pytest.fixture
def page(browser: Any, web: WebState) -> Iterator[Any]:
    """A fresh tab (own sessionStorage) that may reach only the live server, and fails on page errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    off_server: list[str] = []

    def only_local(route: Any) -> None:
        url = route.request.url
        if url.startswith(web.url) or url.startswith(("blob:", "data:")):
            route.continue_()
        else:
            off_server.append(url)
            route.abort()

    context.route("**/*", only_local)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        context.close()
    assert not off_server, f"the page asked for something outside the server: {off_server}"
    assert not errors, f"JavaScript errors: {errors}"


def sign_in(page: Any, web: WebState, key: str = "officer", token: str | None = None) -> None:
    """Open the page and sign in with a key of ``key``'s role (or a literal ``token``)."""
    page.goto(web.url + "/")
    page.fill("#api-key", token if token is not None else web.tokens[key])
    page.click("#signin-form button[type=submit]")


#: Measured figures the browser tests report; printed in pytest's summary (print is for the CLI only).
FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Show the figures the browser tests measured, even without ``-s``."""
    if FIGURES:
        terminalreporter.section("web map figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path))
    return path
