"""The demo: the six-fate portfolio stored, then every refresh stage that exists run on it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rich.console import Console

from aoi.demo import demo_portfolio
from jobs.context import open_engine
from jobs.settings import Settings
from store import repo

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo built."""

    sites: int
    database: str


def build_demo(settings: Settings, *, console: Console | None = None) -> DemoResult:
    """Store the demo portfolio (idempotent: re-running replaces it) and refresh it."""
    console = console or Console(stderr=True)
    engine = open_engine(settings)
    portfolio = demo_portfolio()
    repo.save_portfolio(engine, portfolio, actor="demo")
    console.print(f"stored {len(portfolio.sites)} demo sites and {len(portfolio.loans)} loans")
    return DemoResult(len(portfolio.sites), engine.url.render_as_string(hide_password=True))
