"""The demo: the six-fate portfolio stored, its imagery simulated, then every refresh stage run on it."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aoi.demo import DEMO_AS_OF, demo_portfolio
from imagery.archive import write_archive
from imagery.cache import SceneCache
from imagery.providers.local import LocalArchiveProvider
from imagery.simulate import SimulatedScene
from jobs.context import open_engine
from jobs.iot import load_simulated_readings, site_daily_features
from jobs.notify import LoanContacts, Notifier, SmtpTarget, WebhookTarget, notifier_from_settings
from jobs.outbox import local_outbox
from jobs.progress import make_estimator
from jobs.refresh import RefreshOutcome, refresh_sites
from jobs.risk import load_demo_risk_inputs, score_portfolio
from jobs.settings import Settings
from store import progress_repo, repo

logger = logging.getLogger(__name__)

#: The demo archive starts well before the earliest plan so every site has a baseline.
DEMO_IMAGERY_START = date(2024, 3, 1)
DEMO_SEED = 7
#: Days of simulated sensor history loaded for the demo.
DEMO_SENSOR_DAYS = 120


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

    # Site sensors: the same ingestion path as HTTP and files (idempotent on re-runs).
    sensors_from = DEMO_AS_OF - timedelta(days=DEMO_SENSOR_DAYS)
    ingest = load_simulated_readings(engine, portfolio.sites, sensors_from, DEMO_AS_OF, seed=DEMO_SEED)
    console.print(f"sensor readings: {ingest.accepted} stored, {ingest.duplicate} already there")
    activity = {
        s.id: site_daily_features(engine, s.id, DEMO_AS_OF - timedelta(days=60), DEMO_AS_OF) for s in portfolio.sites
    }

    # Loan servicing and market feeds, then scores, alerts, cases and notifications. Without a
    # configured relay and receiver, a local outbox on loopback takes them (real SMTP and HTTP).
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
        scored = score_portfolio(
            engine,
            as_of=DEMO_AS_OF,
            progress=progress_repo.latest_summaries(engine),
            activity=activity,
            notifier=notifier,
        )
    failed = [o for o in scored if o.status != "ok"]
    console.print(f"scored {len(scored) - len(failed)} loans" + (f", {len(failed)} failed" if failed else ""))
    return DemoResult(len(portfolio.sites), engine.url.render_as_string(hide_password=True), tuple(outcomes))
