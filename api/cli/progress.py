"""``sitewatch progress``: a site's progress against plan."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from aoi.errors import SiteNotFoundError
from aoi.model import Site
from aoi.records import ProgressSummary
from jobs.context import open_engine
from jobs.settings import Settings
from store import progress_repo, repo
from store.progress_repo import summary_to_json

console = Console()


def progress_command(
    ctx: typer.Context,
    site_id: Annotated[str, typer.Argument(help="Site id")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout")] = False,
    evidence: Annotated[
        Path | None, typer.Option(help="Recompute and write an evidence pack (manifest, pictures, COG) here")
    ] = None,
    as_of: Annotated[str | None, typer.Option(help="Day of the evidence figures (default: the stored run's)")] = None,
) -> None:
    """Show a site's progress curve against plan: band, deviation, slip, forecast and flags."""
    settings: Settings = ctx.obj
    engine = open_engine(settings)
    site = repo.get_site(engine, site_id)  # raises SiteNotFoundError for an unknown site
    if evidence is not None:
        _write_evidence(settings, engine, site, evidence, as_of)
        return
    latest = progress_repo.latest_progress(engine, site_id)
    if latest is None:
        raise SiteNotFoundError(f"{site_id} (no progress computed yet: run `sitewatch demo` or a refresh)")
    summary, points, inputs = latest
    if as_json:
        doc: dict[str, Any] = {
            "summary": summary_to_json(summary),
            "series": [{**asdict(p), "on": p.on.isoformat()} for p in points],
            "inputs_sha256": inputs.get("inputs_sha256"),
        }
        console.print_json(data=doc)
        return
    table = Table("date", "planned %", "observed %", "band %", title=f"{site_id}: progress against plan")
    for p in points[-12:]:
        table.add_row(
            p.on.isoformat(), f"{p.planned_pct:.1f}", f"{p.observed_pct:.1f}", f"{p.lower_pct:.1f}-{p.upper_pct:.1f}"
        )
    console.print(table)
    console.print(_verdict(summary))


def _write_evidence(settings: Settings, engine: Engine, site: Site, out_dir: Path, as_of_text: str | None) -> None:
    from imagery.cache import SceneCache
    from jobs.context import open_provider
    from jobs.evidence import write_evidence
    from jobs.progress import make_estimator
    from jobs.refresh import load_scene_history, load_site_work, site_progress

    if as_of_text is not None:
        day = date.fromisoformat(as_of_text)
    else:
        latest = progress_repo.latest_progress(engine, site.id)
        day = latest[0].as_of if latest else date.today()
    estimator = make_estimator(settings.checkpoint, threads=settings.torch_threads)
    provider = open_provider(settings)
    # as a refresh sees the scenes: rejected ones are not read, and the manifest lists them with their reason
    result = site_progress(
        site,
        provider=provider,
        estimator=estimator,
        as_of=day,
        history=load_scene_history(engine, site.id, provider.name),
        cache=SceneCache(settings.cache_dir),
        max_cloud_pct=settings.max_cloud_pct,
        activity=load_site_work(engine, site, day),
    )
    # The folder is left out of the command so the manifest is the same wherever it is written.
    command = f"sitewatch progress {site.id} --as-of {day.isoformat()} --evidence DIR"
    path = write_evidence(site, result, out_dir, command=command)
    console.print(
        f"evidence pack written: {path} ({result.summary.scenes_used} scenes used, method {estimator.method})"
    )


def _verdict(s: ProgressSummary) -> str:
    if s.observed_pct is None:
        return f"as of {s.as_of}: no usable scene yet ({s.scenes_skipped} skipped); planned {s.planned_pct:.1f} %"
    lines = [
        f"as of {s.as_of}: observed [bold]{s.observed_pct:.1f} %[/] ({s.lower_pct:.1f}-{s.upper_pct:.1f}) "
        f"vs planned {s.planned_pct:.1f} % -> deviation {s.deviation_pp:+.1f} pp, slip {s.slip_days:+d} days",
        f"rate {s.rate_pp_per_week or 0:.2f} pp/week; forecast completion {s.forecast_completion or 'n/a'}"
        + (f" (range {s.forecast_early} - {s.forecast_late or 'open'})" if s.forecast_completion else ""),
        f"scenes used {s.scenes_used}, skipped {s.scenes_skipped}; last observation {s.last_observation}; "
        f"method {s.method}",
    ]
    if s.outside_activity_pct is not None:
        lines.append(f"activity outside the footprints: {s.outside_activity_pct:.1f} % of the site")
    if s.stalled:
        seen_by = " and ".join(s.stall_witnesses) or "imagery"
        lines.append(f"[bold red]STALLED[/]: the plan expects progress and none has been seen (by {seen_by})")
    elif s.stall_check == "disputed":
        lines.append("[bold yellow]DISPUTED[/]: imagery sees no progress, the site's sensors see it at work")
    for e in s.events:
        lines.append(f"[bold yellow]{e.kind.upper()}[/] on {e.on}: {e.detail}")
    return "\n".join(lines)
