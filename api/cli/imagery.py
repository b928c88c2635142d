"""``sitewatch imagery``: simulate local archives and list a site's scenes (used, or skipped and why)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aoi.demo import demo_portfolio
from aoi.errors import PortfolioInvalidError
from aoi.model import Site
from aoi.portfolio import parse_portfolio
from aoi.records import SceneRecord
from imagery.archive import write_archive
from imagery.simulate import SimulatedScene, SimulationOptions, acquisition_dates
from jobs.context import open_engine
from jobs.refresh import REASON_REJECTED
from jobs.settings import Settings
from store import repo

logger = logging.getLogger(__name__)

app = typer.Typer(help="Imagery: simulate archives, list scenes.")
console = Console()

#: CLI exit codes for this command group.
EXIT_BAD_INPUT = 2


def load_sites(geojson_text: str, only: Sequence[str] = ()) -> list[Site]:
    """Sites of a portfolio GeoJSON, accepting any loan id (the loans table is not needed here).

    Raises:
        PortfolioInvalidError: the file is not a valid portfolio.
    """
    doc: Any = json.loads(geojson_text)
    features = doc.get("features", []) if isinstance(doc, dict) else []
    loan_ids = [
        str(f.get("properties", {}).get("loan_id"))
        for f in features
        if isinstance(f, dict) and isinstance(f.get("properties"), dict)
    ]
    sites = list(parse_portfolio(doc, known_loan_ids=loan_ids).sites)
    return [s for s in sites if s.id in only] if only else sites


def scene_table(records: Sequence[SceneRecord], *, title: str | None = None) -> Table:
    """A rich table of scene records (one row per scene: used or skipped with the reason)."""
    table = Table(title=title)
    for col, kw in (
        ("acquired (UTC)", {}),
        ("scene", {"overflow": "fold"}),
        ("provider", {}),
        ("cloud %", {"justify": "right"}),
        ("valid", {"justify": "right"}),
        ("used", {}),
        ("reason", {"overflow": "fold"}),
    ):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    for r in sorted(records, key=lambda r: r.acquired_at_utc):
        table.add_row(
            r.acquired_at_utc.strftime("%Y-%m-%d %H:%M"),
            r.scene_id,
            r.provider,
            "-" if r.cloud_pct is None else f"{r.cloud_pct:.1f}",
            f"{100 * r.valid_fraction:.0f}%",
            "[green]yes[/green]" if r.used else "[red]no[/red]",
            r.reason,
        )
    return table


def scene_json(record: SceneRecord) -> dict[str, Any]:
    """One scene record as JSON, with the keys ``GET /v1/sites/{id}/scenes`` uses for its items."""
    return {
        "scene_id": record.scene_id,
        "provider": record.provider,
        "acquired_at": record.acquired_at_utc.isoformat(),
        "cloud_pct": record.cloud_pct,
        "cloud_fraction": None if record.cloud_pct is None else round(record.cloud_pct / 100.0, 4),
        "valid_fraction": record.valid_fraction,
        "used": record.used,
        "reason": record.reason,
    }


@app.callback()
def _group() -> None:
    """Imagery: simulate archives, list scenes."""


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Archive directory to write (created; merged if it exists)")],
    site_geojson: Annotated[
        Path | None, typer.Option("--site-geojson", help="Portfolio GeoJSON; default the built-in demo portfolio")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Simulator seed (same seed, same bytes)")] = 0,
    start: Annotated[str, typer.Option("--start", help="First day, YYYY-MM-DD")] = "2025-01-01",
    end: Annotated[str, typer.Option("--end", help="Last day, YYYY-MM-DD")] = "2026-11-01",
    site: Annotated[list[str] | None, typer.Option("--site", help="Only this site id (repeatable)")] = None,
) -> None:
    """Simulate Sentinel-2 L2A scenes for sites into a local STAC archive, with the truth."""
    try:
        d0, d1 = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        console.print(f"[red]bad date:[/red] {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    if d1 < d0:
        console.print(f"[red]--end {d1} is before --start {d0}[/red]")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        if site_geojson is None:
            sites = [s for s in demo_portfolio().sites if not site or s.id in site]
        else:
            sites = load_sites(site_geojson.read_text(encoding="utf-8"), site or ())
    except (OSError, json.JSONDecodeError) as exc:
        console.print(f"[red]cannot read {site_geojson}:[/red] {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    except PortfolioInvalidError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    if not sites:
        console.print("[yellow]no sites to simulate[/yellow]")
        raise typer.Exit(EXIT_BAD_INPUT)

    opts = SimulationOptions()
    total = sum(len(acquisition_dates(s.id, d0, d1, revisit_days=opts.revisit_days)) for s in sites)
    with Progress(
        TextColumn("[bold]simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("scenes", total=total)

        def advance(_: SimulatedScene) -> None:
            bar.advance(task)

        summaries = write_archive(out, sites, d0, d1, seed=seed, options=opts, on_scene=advance)

    table = Table(title=f"Wrote {out / 'catalog.json'}")
    for col in ("site", "grid", "scenes", "files", "truth"):
        table.add_column(col)
    for s in summaries:
        table.add_row(
            s.site_id, s.grid.key(), str(s.scenes), str(s.files), str(out / "truth" / s.site_id / "progress.csv")
        )
    console.print(table)


@app.command()
def scenes(
    ctx: typer.Context,
    site_id: Annotated[str, typer.Argument(help="The site")],
    since: Annotated[
        str | None, typer.Option("--since", help="Only scenes sensed on or after this day, YYYY-MM-DD")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout")] = False,
) -> None:
    """List a site's scenes in time order: date, cloud share, used or skipped, and the reason.

    The records are those the refreshes stored (the same as ``GET /v1/sites/{id}/scenes``).
    Scenes rejected after repeated read failures show as skipped with their "rejected: ..."
    reason; ``sitewatch scenes clear SITE_ID SCENE_ID`` lets the next refresh read one again.
    An unknown site exits with status 3.
    """
    try:
        since_day = None if since is None else date.fromisoformat(since)
    except ValueError as exc:
        console.print(f"[red]--since: {since!r} is not a date (YYYY-MM-DD)[/red]")
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    root = ctx.find_root().obj
    engine = open_engine(root if isinstance(root, Settings) else Settings())
    repo.get_site(engine, site_id)  # SiteNotFoundError (exit 3) rather than an empty list
    records = [
        r
        for r in repo.list_scene_records(engine, site_id)
        if since_day is None or r.acquired_at_utc.date() >= since_day
    ]
    n_used = sum(r.used for r in records)
    n_rejected = sum(r.reason.startswith(REASON_REJECTED) for r in records)
    if as_json:
        doc = {
            "site_id": site_id,
            "since": None if since_day is None else since_day.isoformat(),
            "count": len(records),
            "used": n_used,
            "skipped": len(records) - n_used,
            "items": [scene_json(r) for r in records],
        }
        typer.echo(json.dumps(doc))
        return
    if not records:
        when = "" if since_day is None else f" since {since_day}"
        console.print(f"no scenes recorded for site {site_id}{when} (a refresh records them)")
        return
    console.print(scene_table(records, title=f"scenes of {site_id}"))
    console.print(f"{len(records)} scene(s): {n_used} used, {len(records) - n_used} skipped")
    if n_rejected:
        console.print(
            f"{n_rejected} rejected after repeated read failures: "
            f"`sitewatch scenes clear {site_id} SCENE_ID` lets the next refresh read one again"
        )
