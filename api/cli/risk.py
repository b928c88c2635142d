"""``sitewatch scores | alerts | cases | loans | market``: loan risk from the command line.

Registered on the root app without a name, so its commands sit at the top level.
Errors reach the exit-code table in ``api.cli`` (bad feed -> 2, unknown id -> 3).
"""

from __future__ import annotations

import getpass
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from jobs.context import open_engine
from jobs.risk import FeedImportSummary, import_market, import_payments, latest_assessments
from jobs.settings import Settings
from risk.alerts import RESPONSE_PLANS
from store import risk_repo

logger = logging.getLogger(__name__)

app = typer.Typer(help="Loan risk: scores, alerts, watch list and feeds.")
alerts_app = typer.Typer(help="Early-warning alerts (without a subcommand: list them).")
cases_app = typer.Typer(help="The watch list: cases, tasks and response plans (without a subcommand: list).")
loans_app = typer.Typer(help="Loan servicing feeds.", no_args_is_help=True)
market_app = typer.Typer(help="Regional market signals.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")
app.add_typer(cases_app, name="cases")
app.add_typer(loans_app, name="loans")
app.add_typer(market_app, name="market")

out = Console()
err = Console(stderr=True)

ByOption = Annotated[str | None, typer.Option("--by", help="Who does it (default: the login name)")]
NoteOption = Annotated[str, typer.Option("--note", help="Why (kept in the audit trail)")]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON on stdout")]


def _engine(ctx: typer.Context) -> Engine:
    settings: Settings = ctx.obj
    return open_engine(settings)


def _by(by: str | None) -> str:
    return by or getpass.getuser()


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, default=str, indent=2))


# ---------------------------------------------------------------- scores


@app.command("scores")
def scores(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The newest score of every loan: score, band, PD, confidence and top drivers."""
    rows: list[dict[str, Any]] = []
    for stored, a in latest_assessments(_engine(ctx)):
        rows.append(
            {
                "loan_id": a.loan_id,
                "site_id": a.site_id,
                "as_of": a.as_of.isoformat(),
                "scored_at": stored.scored_at.isoformat(timespec="seconds"),
                "score": round(a.score, 1),
                "band": a.band,
                "colour": a.colour,
                "pd": round(a.pd, 6),
                "confidence": round(a.confidence, 3),
                "top_drivers": list(a.top_drivers),
                "missing": list(a.missing),
                "config_version": a.config_version,
            }
        )
    if as_json:
        _json(rows)
        return
    if not rows:
        err.print("no scores yet")
        return
    for r in rows:
        colour = {"green": "green", "amber": "yellow", "red": "red"}[r["colour"]]
        missing = f"  [dim]missing: {', '.join(r['missing'])}[/]" if r["missing"] else ""
        out.print(
            f"{r['loan_id']:<22} {r['score']:>5.0f}  [{colour}]{r['band']}[/]  PD {100 * r['pd']:6.2f} %  "
            f"conf {r['confidence']:.2f}  top: {', '.join(r['top_drivers']) or '-'}{missing}"
        )


# ---------------------------------------------------------------- alerts


def _alert_json(a: risk_repo.AlertRecord) -> dict[str, Any]:
    return {
        "id": a.id,
        "loan_id": a.loan_id,
        "site_id": a.site_id,
        "rule_id": a.rule_id,
        "severity": a.severity,
        "status": a.status,
        "title": a.title,
        "opened_at": a.opened_at.isoformat(timespec="seconds"),
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": a.acknowledged_at.isoformat(timespec="seconds") if a.acknowledged_at else None,
        "resolved_by": a.resolved_by,
        "resolution": a.resolution,
        "case_id": a.case_id,
        "evidence": a.evidence,
    }


@alerts_app.callback(invoke_without_command=True)
def alerts_list(
    ctx: typer.Context,
    as_json: JsonOption = False,
    show_all: Annotated[bool, typer.Option("--all", help="Include resolved alerts")] = False,
    loan: Annotated[str | None, typer.Option(help="Only this loan")] = None,
) -> None:
    """List open and acknowledged alerts (``--all`` adds the resolved ones)."""
    if ctx.invoked_subcommand is not None:
        return
    status = None if show_all else ("open", "acknowledged")
    alerts = risk_repo.list_alerts(_engine(ctx), status=status, loan_id=loan)
    if as_json:
        _json([_alert_json(a) for a in alerts])
        return
    table = Table("id", "severity", "status", "loan", "rule", "title", "opened", title=f"{len(alerts)} alert(s)")
    for a in alerts:
        style = {"high": "red", "medium": "yellow", "low": ""}.get(a.severity, "")
        table.add_row(
            str(a.id),
            f"[{style}]{a.severity}[/]" if style else a.severity,
            a.status,
            a.loan_id,
            a.rule_id,
            a.title,
            a.opened_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


@alerts_app.command("ack")
def alerts_ack(ctx: typer.Context, alert_id: int, note: NoteOption = "", by: ByOption = None) -> None:
    """Acknowledge an open alert."""
    a = risk_repo.acknowledge_alert(_engine(ctx), alert_id, by=_by(by), note=note)
    out.print(f"alert {a.id} acknowledged by {a.acknowledged_by}")


@alerts_app.command("resolve")
def alerts_resolve(ctx: typer.Context, alert_id: int, note: NoteOption = "", by: ByOption = None) -> None:
    """Resolve an alert by hand."""
    a = risk_repo.resolve_alert(_engine(ctx), alert_id, by=_by(by), note=note)
    out.print(f"alert {a.id} resolved by {a.resolved_by}")


# ---------------------------------------------------------------- cases


@cases_app.callback(invoke_without_command=True)
def cases_list(
    ctx: typer.Context,
    as_json: JsonOption = False,
    show_all: Annotated[bool, typer.Option("--all", help="Include closed cases")] = False,
) -> None:
    """List watch-list cases with their tasks."""
    if ctx.invoked_subcommand is not None:
        return
    cases = risk_repo.list_cases(_engine(ctx), status=None if show_all else "open")
    if as_json:
        _json([_case_json(c) for c in cases])
        return
    for c in cases:
        plan = c.response_plan or "no response plan yet"
        out.print(f"[bold]case {c.id}[/] {c.loan_id} ({c.severity}, {c.status}): {c.reason} — {plan}")
        for t in c.tasks:
            out.print(f"   task {t.id} [{t.status}] {t.department}: {t.title} — {t.owner}, due {t.due_date}")


def _case_json(c: risk_repo.CaseRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "loan_id": c.loan_id,
        "status": c.status,
        "severity": c.severity,
        "reason": c.reason,
        "opened_at": c.opened_at.isoformat(timespec="seconds"),
        "response_plan": c.response_plan,
        "response_note": c.response_note,
        "response_by": c.response_by,
        "alert_ids": list(c.alert_ids),
        "tasks": [
            {
                "id": t.id,
                "department": t.department,
                "title": t.title,
                "owner": t.owner,
                "due_date": t.due_date.isoformat(),
                "status": t.status,
            }
            for t in c.tasks
        ],
    }


@cases_app.command("respond")
def cases_respond(
    ctx: typer.Context,
    case_id: int,
    plan: Annotated[str, typer.Option(help=f"One of: {', '.join(RESPONSE_PLANS)}")],
    note: NoteOption = "",
    by: ByOption = None,
) -> None:
    """Record the response plan chosen for a case."""
    if plan not in RESPONSE_PLANS:
        raise ValueError(f"--plan must be one of {', '.join(RESPONSE_PLANS)}, got {plan!r}")
    c = risk_repo.record_response(_engine(ctx), case_id, plan=plan, note=note, by=_by(by))
    out.print(f"case {c.id}: response plan {c.response_plan} recorded by {c.response_by}")


@cases_app.command("task-done")
def cases_task_done(ctx: typer.Context, task_id: int, note: NoteOption = "", by: ByOption = None) -> None:
    """Mark a case task done."""
    t = risk_repo.complete_task(_engine(ctx), task_id, by=_by(by), note=note)
    out.print(f"task {t.id} ({t.department}) done by {t.done_by}")


@cases_app.command("close")
def cases_close(ctx: typer.Context, case_id: int, note: NoteOption = "", by: ByOption = None) -> None:
    """Take a loan off the watch list."""
    c = risk_repo.close_case(_engine(ctx), case_id, by=_by(by), note=note)
    out.print(f"case {c.id} closed by {c.closed_by}")


# ---------------------------------------------------------------- feeds


def _report(summary: FeedImportSummary) -> None:
    out.print(
        f"{summary.feed}: {summary.accepted} row(s) stored ({summary.created} new, {summary.updated} updated), "
        f"{len({p.row for p in summary.rejected})} row(s) rejected"
    )
    for p in summary.rejected:
        err.print(f"[yellow]rejected[/] {p}", highlight=False)


FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file")]


@loans_app.command("payments")
def loans_payments(ctx: typer.Context, file: FileArg) -> None:
    """Import repayments from the servicing feed (loan_id, due_date, amount_due, paid_date, amount_paid, restructured).

    Good rows are stored; each rejected row is listed (row, field, reason) and kept for
    ``sitewatch loans rejected``.
    """
    _report(import_payments(_engine(ctx), file.read_text(encoding="utf-8"), source=file.name))


@loans_app.command("rejected")
def loans_rejected(
    ctx: typer.Context,
    feed: Annotated[str | None, typer.Option(help="payments or market")] = None,
    as_json: JsonOption = False,
) -> None:
    """Rejected feed rows with their reasons, newest first."""
    rows = risk_repo.list_rejected(_engine(ctx), feed=feed)
    if as_json:
        _json([_rejected_json(r) for r in rows])
        return
    for r in rows:
        out.print(f"{r.feed} {r.source} row {r.row} ({r.key or '-'}): {r.field}: {r.reason}", highlight=False)


def _rejected_json(r: risk_repo.RejectedRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "feed": r.feed,
        "source": r.source,
        "row": r.row,
        "key": r.key,
        "field": r.field,
        "reason": r.reason,
        "raw": r.raw,
        "recorded_at": r.recorded_at.isoformat(timespec="seconds"),
    }


@market_app.command("import")
def market_import(ctx: typer.Context, file: FileArg) -> None:
    """Import regional market indicators (region, indicator, date, value)."""
    _report(import_market(_engine(ctx), file.read_text(encoding="utf-8"), source=file.name))
