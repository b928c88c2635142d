"""``sitewatch refresh | jobs | scheduler``: refresh jobs from the command line, cron or Kubernetes.

Importing this module registers the three commands on the root app (``api.cli`` imports it
last). Configuration not yet in ``Settings`` is read here from the environment:
``SITEWATCH_DASK_ADDRESS`` (scheduler address of a Dask cluster), ``SITEWATCH_REFRESH_CADENCE_DAYS``
and ``SITEWATCH_REFRESH_JITTER``.

Exit status of ``refresh``: 0 when no site failed, 1 when at least one did (cron sees it).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli import app
from jobs.context import open_engine
from jobs.executors import Executor, make_executor
from jobs.notify import Notifier, notifier_from_settings
from jobs.pipeline import BatchResult, RefreshSpec, iter_site_ids, run_refresh
from jobs.refresh import RefreshOutcome
from jobs.scheduler import Cadence, Scheduler
from jobs.settings import Settings
from store import jobs_repo, repo

logger = logging.getLogger(__name__)

out = Console()
err = Console(stderr=True)

ExecutorOpt = Annotated[
    str, typer.Option("--executor", help="inprocess, processes or dask (implied by --dask-address)")
]
WorkersOpt = Annotated[int | None, typer.Option(help="Worker processes of the processes executor")]
DaskOpt = Annotated[
    str | None,
    typer.Option("--dask-address", envvar="SITEWATCH_DASK_ADDRESS", help="Dask scheduler, e.g. tcp://HOST:8786"),
]
CadenceOpt = Annotated[
    float, typer.Option("--cadence-days", envvar="SITEWATCH_REFRESH_CADENCE_DAYS", help="Days between refreshes")
]
JitterOpt = Annotated[
    float,
    typer.Option(envvar="SITEWATCH_REFRESH_JITTER", help="Share of the cadence site offsets are spread over (0-1)"),
]


def _executor(kind: str, workers: int | None, dask_address: str | None) -> Executor:
    return make_executor("dask" if dask_address else kind, workers=workers, dask_address=dask_address)


def _notifier(settings: Settings) -> Notifier | None:
    """The configured notification channels of the portfolio stage, or None when none is set."""
    if settings.smtp_host or settings.webhook_url:
        return notifier_from_settings(settings)
    return None


def _today() -> date:
    return datetime.now(UTC).date()


def _summary(result: BatchResult) -> dict[str, Any]:
    return {
        "batch_id": result.batch_id,
        "sites": len(result.outcomes),
        "ok": result.count("ok"),
        "skipped": result.count("skipped"),
        "failed": result.count("failed"),
        "stopped": result.stopped,
        "stage_seconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
        "outcomes": [
            {
                "site_id": o.site_id,
                "job_id": o.job_id,
                "status": o.status,
                "reason": o.reason,
                "seconds": round(o.seconds, 3),
                "stage_seconds": {k: round(v, 3) for k, v in o.stage_seconds.items()},
                "counts": o.counts,
            }
            for o in sorted(result.outcomes, key=lambda o: o.site_id)
        ],
        "portfolio": result.portfolio.to_json() if result.portfolio else None,
    }


@contextmanager
def _progress_bar(total: int, enabled: bool) -> Iterator[Any]:
    """A rich bar with sites done, failed and the slowest stage so far; a no-op callback when disabled."""
    if not enabled:
        yield lambda _: None
        return
    columns = (
        TextColumn("[bold]refreshing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ok {task.fields[ok]} · skipped {task.fields[skipped]} · [red]failed {task.fields[failed]}[/]"),
        TextColumn("· slowest stage: {task.fields[slowest]}"),
        TimeElapsedColumn(),
    )
    counts = {"ok": 0, "skipped": 0, "failed": 0}
    stages: dict[str, float] = {}
    with Progress(*columns, console=err) as bar:
        task = bar.add_task("refresh", total=total, slowest="-", ok=0, skipped=0, failed=0)

        def advance(outcome: RefreshOutcome) -> None:
            counts[outcome.status] += 1
            for stage, sec in outcome.stage_seconds.items():
                stages[stage] = stages.get(stage, 0.0) + sec
            slowest = max(stages, key=lambda s: stages[s]) if stages else "-"
            if slowest != "-":
                slowest = f"{slowest} ({stages[slowest]:.1f} s)"
            bar.update(task, advance=1, slowest=slowest, ok=counts["ok"], skipped=counts["skipped"],
                       failed=counts["failed"])  # fmt: skip

        yield advance


@app.command("refresh")
def refresh_command(
    ctx: typer.Context,
    site_id: Annotated[str | None, typer.Argument(help="One site id")] = None,
    all_sites: Annotated[bool, typer.Option("--all", help="Every site in the portfolio")] = False,
    due: Annotated[bool, typer.Option("--due", help="The sites due on their cadence (for cron)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout, no progress bar")] = False,
    as_of: Annotated[str | None, typer.Option(help="Day to compute for, YYYY-MM-DD (default: today, UTC)")] = None,
    full: Annotated[bool, typer.Option("--full", help="Recompute even when no scene is new")] = False,
    executor: ExecutorOpt = "inprocess",
    workers: WorkersOpt = None,
    dask_address: DaskOpt = None,
    cadence_days: CadenceOpt = 5.0,
    jitter: JitterOpt = 1.0,
    no_portfolio: Annotated[bool, typer.Option("--no-portfolio", help="Skip scores and alerts afterwards")] = False,
) -> int:
    """Refresh one site, every site (--all) or the sites due (--due): new scenes in, figures and scores out."""
    if sum([site_id is not None, all_sites, due]) != 1:
        raise ValueError("give exactly one of SITE_ID, --all or --due")  # exit 2 (EXIT_CODES)
    settings: Settings = ctx.obj
    engine = open_engine(settings)
    day = date.fromisoformat(as_of) if as_of else _today()
    trigger = "manual"
    if site_id is not None:
        repo.get_site(engine, site_id)  # unknown site -> exit 3 before any job is recorded
        site_ids = [site_id]
    elif all_sites:
        site_ids = list(iter_site_ids(engine))
    else:
        trigger = "schedule"
        sched = Scheduler(engine, lambda _: spec, cadence=Cadence(timedelta(days=cadence_days), jitter))
        site_ids = sched.due()
    spec = RefreshSpec.from_settings(settings, as_of=day, incremental=not full)
    runner = _executor(executor, workers, dask_address)
    try:
        with _progress_bar(len(site_ids), enabled=not as_json and len(site_ids) > 0) as advance:
            result = run_refresh(
                engine, spec, site_ids, executor=runner, trigger=trigger, portfolio_stage=not no_portfolio,
                on_outcome=advance, notifier=_notifier(settings),
            )  # fmt: skip
    finally:
        runner.close()
    doc = _summary(result)
    if as_json:
        out.print_json(data=doc)
    else:
        for o in sorted(result.outcomes, key=lambda o: o.site_id):
            if o.status != "ok":
                colour = "red" if o.status == "failed" else "yellow"
                err.print(f"[{colour}]{o.site_id}[/]: {o.label}", highlight=False)
        out.print(
            f"{doc['sites']} site(s): {doc['ok']} ok, {doc['skipped']} skipped, {doc['failed']} failed "
            f"(batch {result.batch_id})"
        )
        if result.portfolio is not None:
            p = result.portfolio
            out.print(f"portfolio stage: {p.status} {p.reason} {p.counts}", highlight=False)
    return 1 if doc["failed"] else 0


@app.command("jobs")
def jobs_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout")] = False,
    site: Annotated[str | None, typer.Option(help="Only this site")] = None,
    batch: Annotated[str | None, typer.Option(help="Only this batch")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 50,
) -> None:
    """List refresh job records, newest first: trigger, status, stage timings, counts and errors."""
    engine = open_engine(ctx.obj)
    records = jobs_repo.list_jobs(engine, site_id=site, batch_id=batch, status=status, limit=limit)
    if as_json:
        out.print_json(data=[r.to_json() for r in records])
        return
    table = Table("job", "site", "trigger", "status", "started (UTC)", "s", "stages", "reason", title="refresh jobs")
    for r in records:
        stages = " ".join(f"{k} {v:.1f}" for k, v in r.stage_seconds.items())
        secs = f"{r.seconds:.1f}" if r.seconds is not None else "-"
        started = r.started_at.strftime("%Y-%m-%d %H:%M:%S") if r.started_at else "-"
        table.add_row(r.id[:8], r.site_id or "(portfolio)", r.trigger, r.status, started, secs, stages, r.reason)
    out.print(table)


@app.command("scheduler")
def scheduler_command(
    ctx: typer.Context,
    executor: ExecutorOpt = "inprocess",
    workers: WorkersOpt = None,
    dask_address: DaskOpt = None,
    cadence_days: CadenceOpt = 5.0,
    jitter: JitterOpt = 1.0,
    poll_s: Annotated[float, typer.Option(help="Longest sleep between checks, seconds")] = 300.0,
    max_sites: Annotated[int, typer.Option(help="At most this many sites per batch")] = 1000,
    max_ticks: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Refresh sites on their cadence until SIGTERM or Ctrl-C (the running site finishes first)."""
    settings: Settings = ctx.obj
    engine = open_engine(settings)
    runner = _executor(executor, workers, dask_address)

    def spec_for(now: datetime) -> RefreshSpec:
        return RefreshSpec.from_settings(settings, as_of=now.date())

    def report(result: BatchResult) -> None:
        err.print(
            f"batch {result.batch_id}: {result.count('ok')} ok, {result.count('skipped')} skipped, "
            f"{result.count('failed')} failed"
        )

    sched = Scheduler(
        engine,
        spec_for,
        cadence=Cadence(timedelta(days=cadence_days), jitter),
        executor=runner,
        max_sites_per_tick=max_sites,
        poll_s=poll_s,
        on_batch=report,
        notifier=_notifier(settings),
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        err.print(f"signal {signum}: stopping after the running site")
        sched.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    err.print(f"scheduler: every {cadence_days:g} days, jitter {jitter:g}, executor {runner.name}")
    try:
        batches = sched.run_forever(max_ticks=max_ticks)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        runner.close()
    err.print(f"scheduler stopped after {batches} batch(es)")
