"""``sitewatch imagery``: simulate local archives and show scene records."""

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
