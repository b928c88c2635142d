"""``sitewatch report``: a site's PDF report for the credit file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from jobs.context import open_engine
from jobs.settings import Settings

console = Console()


def report_command(
    ctx: typer.Context,
    site_id: Annotated[str, typer.Argument(help="Site id")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the PDF (replaced atomically)")],
) -> None:
    """Write a site's PDF report: map snapshot, progress and activity charts, score, alerts and case."""
    from jobs.report import gather_site_report, report_pdf  # matplotlib loads only for this command

    settings: Settings = ctx.obj
    engine = open_engine(settings)
    report = gather_site_report(engine, settings, site_id)  # raises SiteNotFoundError for an unknown site
    pdf = report_pdf(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pdf)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    used = sum(r.used for r in report.scenes)
    console.print(f"{out}: report of {site_id} ({len(pdf)} bytes, {used} of {len(report.scenes)} scenes used)")
