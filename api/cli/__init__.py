"""The `sitewatch` command line. Exit codes are assigned in one table, EXIT_CODES."""

from __future__ import annotations

import json
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

import store
from aoi.errors import AoiError, PortfolioInvalidError
from aoi.model import Site
from api.cli import imagery as imagery_cli
from api.cli import iot as iot_cli
from api.cli import keys as keys_cli
from api.cli import model as model_cli
from api.cli import progress as progress_cli
from api.cli import report as report_cli
from api.cli import risk as risk_cli
from iot.errors import BrokerUnavailableError
from jobs.context import open_engine
from jobs.settings import Settings
from store import repo

logger = logging.getLogger(__name__)

out = Console()
err = Console(stderr=True)

#: Exit status per error kind; anything else is a bug and exits 1 with a traceback.
EXIT_CODES: dict[type[Exception], int] = {
    PortfolioInvalidError: 2,
    ValidationError: 2,
    LookupError: 3,
    store.DatabaseUnavailableError: 4,
    BrokerUnavailableError: 4,
    store.SchemaOutdatedError: 4,
    FileNotFoundError: 5,
    AoiError: 2,
    ValueError: 2,
}

app = typer.Typer(
    name="sitewatch", help="SiteWatch: construction progress and loan early warning.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
sites_app = typer.Typer(help="Sites, plans and loans.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sites_app, name="sites")
app.add_typer(iot_cli.app, name="iot")
app.add_typer(imagery_cli.app, name="imagery")
app.add_typer(keys_cli.app, name="keys")
app.add_typer(model_cli.app, name="model")
app.command("progress")(progress_cli.progress_command)
app.command("report")(report_cli.report_command)
app.add_typer(risk_cli.app)


def settings_of(ctx: typer.Context) -> Settings:
    """The Settings built once by the root callback."""
    settings: Settings = ctx.obj
    return settings


@app.callback()
def _root(
    ctx: typer.Context,
    data_dir: Annotated[Path | None, typer.Option(help="Overrides SITEWATCH_DATA_DIR")] = None,
    database_url: Annotated[str | None, typer.Option(help="Overrides SITEWATCH_DATABASE_URL")] = None,
) -> None:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    ctx.obj = Settings(**overrides)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the database schema to the newest revision."""
    settings = settings_of(ctx)
    engine = open_engine(settings)
    out.print(f"database at revision [bold]{store.current_revision(engine)}[/] ({engine.url.render_as_string()})")


@sites_app.command("import")
def sites_import(
    ctx: typer.Context,
    portfolio: Annotated[Path, typer.Argument(help="GeoJSON FeatureCollection of sites", exists=True, dir_okay=False)],
    loans: Annotated[Path | None, typer.Option(help="Loans CSV", exists=True, dir_okay=False)] = None,
    repair: Annotated[bool, typer.Option(help="Repair invalid geometries with make_valid and report it")] = False,
    crs: Annotated[str | None, typer.Option(help="CRS of the coordinates when not WGS84, e.g. EPSG:32633")] = None,
) -> None:
    """Validate and import a portfolio: all of it, or nothing."""
    from jobs.portfolio import import_portfolio

    try:
        collection = json.loads(portfolio.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PortfolioInvalidError([_json_problem(portfolio, exc)]) from exc
    engine = open_engine(settings_of(ctx))
    result = import_portfolio(
        engine,
        collection,
        loans_csv=loans.read_text(encoding="utf-8") if loans else None,
        repair=repair,
        source_crs=crs,
    )
    for rep in result.report.repairs:
        err.print(f"[yellow]repaired[/] {rep}")
    s = result.summary
    out.print(
        f"imported {s.sites_created + s.sites_updated} site(s) ({s.sites_created} new, {s.sites_updated} updated) "
        f"and {s.loans_created + s.loans_updated} loan(s)"
    )


def _json_problem(path: Path, exc: json.JSONDecodeError) -> Any:
    from aoi.errors import Problem

    return Problem(-1, None, str(path), f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")


def _site_summary(site: Site, today: date) -> dict[str, Any]:
    return {
        "id": site.id,
        "name": site.name,
        "loan_id": site.loan_id,
        "region": site.region,
        "phases": len(site.plan.phases),
        "plan_start": site.plan.start.isoformat(),
        "plan_end": site.plan.end.isoformat(),
        "planned_pct_today": round(site.plan.planned_percent(today), 1),
    }


@sites_app.command("list")
def sites_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout")] = False,
    region: Annotated[str | None, typer.Option(help="Only this region")] = None,
) -> None:
    """List the sites in the portfolio."""
    engine = open_engine(settings_of(ctx))
    today = date.today()
    rows = [_site_summary(s, today) for s in repo.list_sites(engine, region=region)]
    if as_json:
        out.print_json(data=rows)
        return
    table = Table("id", "name", "loan", "region", "phases", "plan", "planned today", title=f"{len(rows)} site(s)")
    for r in rows:
        table.add_row(
            r["id"],
            r["name"],
            r["loan_id"],
            r["region"],
            str(r["phases"]),
            f"{r['plan_start']} → {r['plan_end']}",
            f"{r['planned_pct_today']:.1f} %",
        )
    out.print(table)


@sites_app.command("show")
def sites_show(
    ctx: typer.Context,
    site_id: Annotated[str, typer.Argument(help="Site id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one site with its plan and loan."""
    from aoi.portfolio import site_to_feature

    engine = open_engine(settings_of(ctx))
    site = repo.get_site(engine, site_id)
    if as_json:
        out.print_json(data=site_to_feature(site))
        return
    loan = repo.get_loan(engine, site.loan_id)
    out.print(f"[bold]{site.name}[/] ({site.id}), region {site.region}")
    out.print(
        f"loan {loan.id}: {loan.borrower}, {loan.amount:,.0f} {loan.currency}, outstanding {loan.outstanding:,.0f}"
    )
    table = Table("phase", "weight", "start", "end", title="plan")
    for p in site.plan.phases:
        table.add_row(p.name, f"{p.weight:.2f}", p.start.isoformat(), p.end.isoformat())
    out.print(table)
    out.print(f"planned today: {site.plan.planned_percent(date.today()):.1f} %")


@sites_app.command("export")
def sites_export(
    ctx: typer.Context,
    out_file: Annotated[Path | None, typer.Option("--out", help="GeoJSON file (default: stdout)")] = None,
    loans_out: Annotated[Path | None, typer.Option(help="Also write the loans CSV here")] = None,
) -> None:
    """Export the portfolio in the import format."""
    from jobs.portfolio import export_portfolio

    geojson, loans_csv = export_portfolio(open_engine(settings_of(ctx)))
    if out_file is None:
        sys.stdout.write(geojson + "\n")
    else:
        out_file.write_text(geojson, encoding="utf-8")
        err.print(f"wrote {out_file}")
    if loans_out is not None:
        loans_out.write_text(loans_csv, encoding="utf-8")
        err.print(f"wrote {loans_out}")


@app.command("demo")
def demo(ctx: typer.Context) -> None:
    """Build the demo portfolio and run every refresh stage on it."""
    from jobs.demo import build_demo

    settings = settings_of(ctx)
    result = build_demo(settings, console=err)
    out.print(f"demo ready: {result.sites} sites in {result.database}")
    # Keys are stored only as hashes, so the demo issues a fresh officer key each time it is built.
    from api.auth import new_token
    from store import api_repo

    token = new_token()
    api_repo.save_key(
        open_engine(settings, migrate=False),
        key_id=token.key_id,
        name="demo officer",
        role="officer",
        sites=None,
        token_sha256=token.token_sha256,
        actor="demo",
    )
    key_file = settings.data_dir / "demo-officer-key.txt"
    key_file.write_text(token.token + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    url = f"http://{settings.api_host}:{settings.api_port}/"
    out.print(f"sign in at {url} with the officer key in {key_file}:\n{token.token}", soft_wrap=True)


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default SITEWATCH_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default SITEWATCH_API_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default SITEWATCH_API_WORKERS)")] = None,
) -> None:
    """Serve the API and the web map."""
    import os

    import uvicorn

    settings = settings_of(ctx)
    open_engine(settings)  # migrate once here, not in every worker
    # Workers build their own Settings from the environment: hand the CLI overrides on.
    os.environ["SITEWATCH_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        os.environ["SITEWATCH_DATABASE_URL"] = settings.database_url
    uvicorn.run(
        "api.main:app",
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers or settings.api_workers,
        log_level=settings.log_level.lower(),
        access_log=False,  # api.metrics.EdgeMiddleware already writes one line per request
    )


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])
    logging.getLogger("alembic").setLevel(logging.WARNING)


def exit_code_for(exc: BaseException) -> int | None:
    """The exit status for an error, or None for an unexpected one."""
    for kind, code in EXIT_CODES.items():
        if isinstance(exc, kind):
            return code
    return None


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status (errors mapped through EXIT_CODES)."""
    try:
        rv = app(args=argv, standalone_mode=False)
    except click.exceptions.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except Exception as exc:
        code = exit_code_for(exc)
        if code is None:
            raise
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        return code
    return rv if isinstance(rv, int) else 0


def main() -> None:
    """Console-script entry point."""
    _configure_logging("INFO")
    sys.exit(run())


from api.cli import refresh as refresh_cli  # noqa: E402, F401  (registers refresh, jobs and scheduler)
