"""``sitewatch refresh | jobs | scheduler | scenes``: refresh jobs from the command line, cron or Kubernetes.

Importing this module registers the commands on the root app (``api.cli`` imports it
last). Options left out fall back to ``Settings``: ``--dask-address`` to ``SITEWATCH_DASK_ADDRESS``,
``--cadence-days`` to ``SITEWATCH_REFRESH_CADENCE_DAYS``, ``--jitter`` to ``SITEWATCH_REFRESH_JITTER``.

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
from jobs.pipeline import BatchResult, RefreshSpec, run_refresh
from jobs.refresh import RefreshOutcome, clear_rejected_scene, list_rejected_scenes
from jobs.scheduler import Cadence, Scheduler
from jobs.settings import Settings
from jobs.stale import abandon_stale_jobs
from store import jobs_repo, repo

logger = logging.getLogger(__name__)

out = Console()
err = Console(stderr=True)

scenes_app = typer.Typer(help="Scenes rejected after repeated read failures.", no_args_is_help=True)
app.add_typer(scenes_app, name="scenes")

ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="inprocess, processes or dask (default: dask when a Dask address is given or set, else inprocess)",
    ),
]
WorkersOpt = Annotated[int | None, typer.Option(help="Worker processes of the processes executor")]
DaskOpt = Annotated[
    str | None,
    typer.Option("--dask-address", help="Dask scheduler, e.g. tcp://HOST:8786 (default SITEWATCH_DASK_ADDRESS)"),
]
CadenceOpt = Annotated[
    float | None,
    typer.Option("--cadence-days", help="Days between refreshes (default SITEWATCH_REFRESH_CADENCE_DAYS)"),
]
JitterOpt = Annotated[
    float | None,
    typer.Option(help="Share of the cadence site offsets are spread over, 0-1 (default SITEWATCH_REFRESH_JITTER)"),
]


def _executor(settings: Settings, kind: str | None, workers: int | None, dask_address: str | None) -> Executor:
    """The executor asked for; without a kind, Dask when there is an address (option, else settings)."""
    address = dask_address or settings.dask_address
    if kind is None:
        kind = "dask" if address else "inprocess"
    return make_executor(kind, workers=workers, dask_address=address)


def _cadence(settings: Settings, cadence_days: float | None, jitter: float | None) -> Cadence:
    """The settings' cadence, with the command line's overrides."""
    base = Cadence.from_settings(settings)
    return Cadence(
        timedelta(days=cadence_days) if cadence_days is not None else base.every,
        jitter if jitter is not None else base.jitter,
    )


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
        # Of the ok: figures recomputed from stored estimates, no scene being new.
        "refigured": sum(bool(o.counts.get("refigured")) for o in result.outcomes),
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
    executor: ExecutorOpt = None,
    workers: WorkersOpt = None,
    dask_address: DaskOpt = None,
    cadence_days: CadenceOpt = None,
    jitter: JitterOpt = None,
    no_portfolio: Annotated[bool, typer.Option("--no-portfolio", help="Skip scores and alerts afterwards")] = False,
) -> int:
    """Refresh one site, every site (--all) or the sites due (--due): new scenes in, figures and scores out."""
    if sum([site_id is not None, all_sites, due]) != 1:
        raise ValueError("give exactly one of SITE_ID, --all or --due")  # exit 2 (EXIT_CODES)
    settings: Settings = ctx.obj
    engine = open_engine(settings)
    day = date.fromisoformat(as_of) if as_of else _today()
    spec = RefreshSpec.from_settings(settings, as_of=day, incremental=not full)
    trigger = "manual"
    if site_id is not None:
        repo.get_site(engine, site_id)  # unknown site -> exit 3 before any job is recorded
        site_ids = [site_id]
    elif all_sites:
        site_ids = repo.list_site_ids(engine)
    else:
        trigger = "schedule"
        abandon_stale_jobs(engine, spec.stale_policy)  # sites of dead runs come due again
        site_ids = Scheduler(engine, lambda _: spec, cadence=_cadence(settings, cadence_days, jitter)).due()
    runner = _executor(settings, executor, workers, dask_address)
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
            f"{doc['sites']} site(s): {doc['ok']} ok ({doc['refigured']} without new scenes), "
            f"{doc['skipped']} skipped, {doc['failed']} failed "
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
    executor: ExecutorOpt = None,
    workers: WorkersOpt = None,
    dask_address: DaskOpt = None,
    cadence_days: CadenceOpt = None,
    jitter: JitterOpt = None,
    poll_s: Annotated[float, typer.Option(help="Longest sleep between checks, seconds")] = 300.0,
    max_sites: Annotated[int, typer.Option(help="At most this many sites per batch")] = 1000,
    max_ticks: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Refresh sites on their cadence until SIGTERM or Ctrl-C (the running site finishes first)."""
    settings: Settings = ctx.obj
    engine = open_engine(settings)
    runner = _executor(settings, executor, workers, dask_address)
    cadence = _cadence(settings, cadence_days, jitter)

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
        cadence=cadence,
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
    days = cadence.every / timedelta(days=1)
    err.print(f"scheduler: every {days:g} days, jitter {cadence.jitter:g}, executor {runner.name}")
    try:
        batches = sched.run_forever(max_ticks=max_ticks)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        runner.close()
    err.print(f"scheduler stopped after {batches} batch(es)")


@scenes_app.command("rejected")
def scenes_rejected_command(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option(help="Only this site")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout")] = False,
) -> None:
    """List scenes no refresh reads any more (unreadable too many times), with the last error."""
    engine = open_engine(ctx.obj)
    records = list_rejected_scenes(engine, site_id=site)
    if as_json:
        out.print_json(
            data=[
                {"site_id": r.site_id, "provider": r.provider, "scene_id": r.scene_id,
                 "acquired_at_utc": r.acquired_at_utc.isoformat(), "reason": r.reason, "meta": r.meta}
                for r in records
            ]
        )  # fmt: skip
        return
    table = Table("site", "provider", "scene", "acquired (UTC)", "reason", title="rejected scenes")
    for r in records:
        table.add_row(r.site_id, r.provider, r.scene_id, r.acquired_at_utc.strftime("%Y-%m-%d %H:%M"), r.reason)
    out.print(table)


@scenes_app.command("clear")
def scenes_clear_command(
    ctx: typer.Context,
    site_id: Annotated[str, typer.Argument(help="The site")],
    scene_id: Annotated[str, typer.Argument(help="The rejected scene")],
    by: Annotated[str, typer.Option(help="Who clears it (recorded in the audit log)")] = "operator",
) -> None:
    """Let the next refresh read a rejected scene again (exit 3 when the site has no such rejected scene)."""
    engine = open_engine(ctx.obj)
    cleared = clear_rejected_scene(engine, site_id, scene_id, actor=by)
    out.print(f"{site_id}/{scene_id}: cleared ({len(cleared)} record(s)); the next refresh reads it again")
