"""``sitewatch iot``: listen to site feeds, import CSV, list rejected readings, simulate sensors."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from aoi.demo import DEMO_AS_OF, demo_portfolio
from iot.mqtt import DEFAULT_MQTT_URL
from iot.readings import TOPIC_ROOT
from jobs.context import open_engine
from jobs.settings import Settings
from store import readings as readings_store

logger = logging.getLogger(__name__)

out = Console()
err = Console(stderr=True)
_BROKER_HELP = "Broker (default SITEWATCH_MQTT_URL or mqtt://127.0.0.1:1883)"

app = typer.Typer(help="Site sensor feeds (MQTT, HTTP, CSV) and their dead letters.", no_args_is_help=True)


def _settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    settings: Settings = root.obj
    return settings


@app.command("listen")
def listen(
    ctx: typer.Context,
    mqtt_url: Annotated[str | None, typer.Option(help=_BROKER_HELP)] = None,
    client_id: Annotated[str, typer.Option(help="Persistent session id: keep it fixed")] = "sitewatch-ingest",
    root: Annotated[str, typer.Option(help="Topic root")] = TOPIC_ROOT,
    batch_size: Annotated[int, typer.Option(min=1, max=5000, help="Most messages per transaction")] = 2000,
    receive_maximum: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65_535,
            help="Most unacknowledged messages in flight (MQTT 5), so most redelivered after a crash; "
            "default two batches",
        ),
    ] = None,
) -> None:
    """Subscribe to <root>/sites/+/sensors/+ (QoS 1, persistent session) and store readings until SIGTERM/SIGINT."""
    from jobs.iot import run_listener

    settings = _settings(ctx)
    url = mqtt_url or settings.mqtt_url or DEFAULT_MQTT_URL
    engine = open_engine(settings)
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        logger.info("signal %s: stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    err.print(f"listening on {url} for {root}/sites/+/sensors/+ as {client_id} (Ctrl-C to stop)")
    _stats, summary = run_listener(
        engine,
        url,
        stop=stop,
        client_id=client_id,
        root=root,
        batch_size=batch_size,
        receive_maximum=receive_maximum,
    )
    err.print(f"stored {summary.accepted}, duplicate {summary.duplicate}, rejected {summary.rejected}")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV: site_id,sensor_id,kind,observed_at,value,unit", dir_okay=False)],
) -> None:
    """Import readings from a CSV file; bad rows are dead-lettered with their line number."""
    from jobs.iot import import_csv

    summary = import_csv(open_engine(_settings(ctx)), file)
    out.print(
        f"imported {file.name}: {summary.accepted} accepted, {summary.duplicate} duplicate, {summary.rejected} rejected"
    )


@app.command("rejected")
def rejected(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    source: Annotated[str | None, typer.Option(help="mqtt, http, csv or sim")] = None,
    site: Annotated[str | None, typer.Option(help="Only this site")] = None,
) -> None:
    """List rejected readings (dead letters), newest first, with the reason."""
    rows = readings_store.list_rejected(open_engine(_settings(ctx)), limit=limit, source=source, site_id=site)
    if as_json:
        data = [{**dataclasses.asdict(r), "received_at_utc": r.received_at_utc.isoformat()} for r in rows]
        out.print_json(data=data)
        return
    table = Table("id", "received (UTC)", "source", "origin", "reason", "raw", title=f"{len(rows)} rejected")
    for r in rows:
        raw = r.raw if len(r.raw) <= 80 else r.raw[:77] + "..."
        table.add_row(str(r.id), r.received_at_utc.strftime("%Y-%m-%d %H:%M:%S"), r.source, r.origin, r.reason, raw)
    out.print(table)


@app.command("simulate")
def simulate(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(min=1, help="Days of readings, ending on the demo date")] = 30,
    end: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD; default the demo's as-of date)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    site: Annotated[list[str] | None, typer.Option(help="Only these demo sites (repeatable)")] = None,
    mqtt_url: Annotated[str | None, typer.Option(help=_BROKER_HELP)] = None,
    direct: Annotated[bool, typer.Option(help="Store through the ingestion path without a broker")] = False,
    root: Annotated[str, typer.Option(help="Topic root")] = TOPIC_ROOT,
) -> None:
    """Simulate the demo sites' sensors, following each site's fate; publish over MQTT or store directly."""
    from jobs.demo import load_simulated_readings, publish_simulated_readings

    settings = _settings(ctx)
    last = date.fromisoformat(end) if end else DEMO_AS_OF
    first = last - timedelta(days=days - 1)
    sites = [s for s in demo_portfolio().sites if not site or s.id in site]
    if direct:
        summary = load_simulated_readings(open_engine(settings), sites, first, last, seed)
        out.print(f"stored {summary.accepted} simulated readings ({summary.duplicate} already there)")
        return
    url = mqtt_url or settings.mqtt_url or DEFAULT_MQTT_URL
    n = publish_simulated_readings(url, sites, first, last, seed, root=root)
    out.print(f"published {n} simulated readings for {len(sites)} site(s), {first} to {last}, to {url}")
