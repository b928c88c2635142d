"""The demo: the six-fate portfolio stored, its imagery simulated, then every refresh stage run on it.

The demo's own loaders live here too, so the production modules (``jobs.iot``, ``jobs.risk``)
never import simulators: simulated sensor readings (stored through the ingestion path, or
published to a broker) and the demo's payments and market feeds.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from aoi.demo import DEMO_AS_OF, demo_portfolio, fate_curve
from aoi.model import Site
from imagery.archive import write_archive
from imagery.cache import SceneCache
from imagery.providers.local import LocalArchiveProvider
from imagery.simulate import SimulatedScene
from iot.mqtt import BrokerAddress, publish_all
from iot.readings import TOPIC_ROOT, topic_for
from iot.simulate import simulated_readings
from jobs.context import open_engine
from jobs.iot import MAX_BATCH, IngestSummary, SiteDirectory, ingest_items
from jobs.notify import LoanContacts, Notifier, SmtpTarget, WebhookTarget, notifier_from_settings
from jobs.outbox import local_outbox
from jobs.pipeline import new_id, run_portfolio_stage
from jobs.progress import make_estimator
from jobs.refresh import RefreshOutcome, refresh_sites
from jobs.risk import FeedImportSummary, import_market
from jobs.settings import Settings
from risk.config import DEFAULT_CONFIG_DIR
from risk.demo import demo_payments
from store import repo, risk_repo

logger = logging.getLogger(__name__)

#: The demo archive starts well before the earliest plan so every site has a baseline.
DEMO_IMAGERY_START = date(2024, 3, 1)
DEMO_SEED = 7
#: Days of simulated sensor history loaded for the demo: back past the stalled site's stop (2026-06-15),
#: so its sensors know its working days (:func:`iot.features.work_levels`).
DEMO_SENSOR_DAYS = 200
#: The market series shipped for the demo regions (regenerate with risk/data/make_market_demo.py).
DEMO_MARKET_CSV = DEFAULT_CONFIG_DIR.parent / "data" / "market_demo.csv"


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo built."""

    sites: int
    database: str
    outcomes: tuple[RefreshOutcome, ...] = ()


def build_demo(settings: Settings, *, console: Console | None = None) -> DemoResult:
    """Store the demo portfolio, simulate its archive (once) and refresh every site.

    Idempotent: re-running replaces the portfolio and recomputes the same figures.
    """
    console = console or Console(stderr=True)
    engine = open_engine(settings)
    portfolio = demo_portfolio()
    repo.save_portfolio(engine, portfolio, actor="demo")
    console.print(f"stored {len(portfolio.sites)} demo sites and {len(portfolio.loans)} loans")

    archive = settings.resolved_archive_dir
    bar_columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    if not (archive / "catalog.json").exists():
        with Progress(*bar_columns, console=console) as bar:
            task = bar.add_task("simulating imagery", total=None)

            def tick(_: SimulatedScene) -> None:
                bar.advance(task)

            write_archive(archive, portfolio.sites, DEMO_IMAGERY_START, DEMO_AS_OF, seed=DEMO_SEED, on_scene=tick)
    # Site sensors first: the same ingestion path as HTTP and files (idempotent on re-runs); the
    # refresh reads them as the stall flag's second witness.
    sensors_from = DEMO_AS_OF - timedelta(days=DEMO_SENSOR_DAYS)
    ingest = load_simulated_readings(engine, portfolio.sites, sensors_from, DEMO_AS_OF, seed=DEMO_SEED)
    console.print(f"sensor readings: {ingest.accepted} stored, {ingest.duplicate} already there")

    provider = LocalArchiveProvider(archive)
    estimator = make_estimator(settings.checkpoint, threads=settings.torch_threads)
    console.print(f"progress by {estimator.method}")
    with Progress(*bar_columns, console=console) as bar:
        task = bar.add_task("refreshing sites", total=len(portfolio.sites))
        outcomes = refresh_sites(
            engine,
            portfolio.sites,
            provider=provider,
            estimator=estimator,
            as_of=DEMO_AS_OF,
            cache=SceneCache(settings.cache_dir),
            max_cloud_pct=settings.max_cloud_pct,
            on_outcome=lambda _: bar.advance(task),
        )
    for o in outcomes:
        if o.status != "ok":
            console.print(f"[yellow]{o.site_id}: {o.status}[/] {o.reason}")

    # Loan servicing and market feeds, then the refresh's portfolio stage: daily sensor features,
    # scores, alerts, cases and notifications. Without a configured relay and receiver, a local
    # outbox on loopback takes the notifications (real SMTP and HTTP).
    load_demo_risk_inputs(engine, DEMO_AS_OF)
    contacts = {
        ln.id: LoanContacts(
            officer=f"officer.{ln.id.lower()}@bank.example", borrower=f"billing@{ln.id.lower()}.example"
        )
        for ln in portfolio.loans
    }
    with ExitStack() as stack:
        if settings.smtp_host or settings.webhook_url:
            notifier = notifier_from_settings(settings, contacts)
        else:
            box = stack.enter_context(local_outbox(settings.data_dir / "outbox"))
            notifier = Notifier(
                webhook=WebhookTarget(box.webhook_url, box.webhook_secret, max_attempts=3, backoff_s=0.2),
                smtp=SmtpTarget(box.smtp_host, box.smtp_port, "sitewatch@demo.local"),
                contacts=contacts,
            )
            console.print(f"notifications go to the local outbox in {box.folder}")
        stage = run_portfolio_stage(engine, as_of=DEMO_AS_OF, batch_id=new_id(), notifier=notifier)
    failed = int(stage.counts.get("loans_failed", 0))
    console.print(
        f"scored {stage.counts.get('loans_scored', 0)} loans" + (f", {failed} failed" if failed else "")
        + ("" if stage.status == "ok" else f" ([red]{stage.status}[/]: {stage.reason})")
    )  # fmt: skip
    return DemoResult(len(portfolio.sites), engine.url.render_as_string(hide_password=True), tuple(outcomes))


# ---------------------------------------------------------------- simulation


def _simulated(sites: Iterable[Site], start: date, end: date, seed: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for site in sites:
        curve = fate_curve(site)
        if curve is None:
            logger.info("site %s has no fate: no simulated sensors", site.id, extra={"site_id": site.id})
            continue
        for r in simulated_readings(site, curve, start, end, seed=seed):
            yield r.site_id, r.sensor_id, r.payload


def load_simulated_readings(
    engine: Engine, sites: Iterable[Site], start: date, end: date, seed: int = 0
) -> IngestSummary:
    """Store the simulated sensor readings of demo sites through the ingestion path (no broker).

    Deterministic by ``seed``; loading twice stores nothing new. The sites must be stored.
    """
    summary = IngestSummary()
    directory = SiteDirectory(engine)
    chunk: list[dict[str, Any]] = []
    for _site, _sensor, payload in _simulated(sites, start, end, seed):
        chunk.append(payload)
        if len(chunk) >= MAX_BATCH:
            summary.add(ingest_items(engine, chunk, source="sim", sites=directory))
            chunk = []
    if chunk:
        summary.add(ingest_items(engine, chunk, source="sim", sites=directory))
    logger.info("simulated readings: %s stored, %s already there", summary.accepted, summary.duplicate)
    return summary


def publish_simulated_readings(
    mqtt_url: str,
    sites: Iterable[Site],
    start: date,
    end: date,
    seed: int = 0,
    *,
    root: str = TOPIC_ROOT,
) -> int:
    """Publish the simulated readings of demo sites, one QoS 1 message each; returns how many.

    Raises:
        BrokerUnavailableError: The broker cannot be reached or did not acknowledge them all.
    """
    messages = (
        (topic_for(site_id, sensor_id, root=root), json.dumps(payload, separators=(",", ":")))
        for site_id, sensor_id, payload in _simulated(sites, start, end, seed)
    )
    n = publish_all(BrokerAddress.parse(mqtt_url), messages, client_id=f"sitewatch-sim-{uuid.uuid4().hex[:8]}")
    logger.info("published %s simulated readings to %s", n, mqtt_url)
    return n


# ---------------------------------------------------------------- demo feeds


def load_demo_risk_inputs(engine: Engine, as_of: date = DEMO_AS_OF) -> tuple[FeedImportSummary, FeedImportSummary]:
    """Store the demo payments (following each demo site's fate) and the shipped market series.

    The demo portfolio must be stored first. Idempotent: re-running replaces the same rows.
    """
    portfolio = repo.load_portfolio(engine)
    payments = demo_payments(portfolio, as_of)
    created, updated = risk_repo.save_payments(engine, payments, source="demo")
    pay = FeedImportSummary("payments", "demo", created, updated, ())
    market = import_market(engine, DEMO_MARKET_CSV.read_text(encoding="utf-8"), source=DEMO_MARKET_CSV.name)
    return pay, market
