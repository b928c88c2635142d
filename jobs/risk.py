"""Loan risk: import the servicing and market feeds, score the portfolio, raise alerts, notify.

``score_portfolio`` is the entry point for the demo and the refresh pipeline: it loads the
portfolio, payments and market series, derives each loan's inputs with the site's progress
summary and sensor activity, scores every loan at once, stores the scores with their inputs
and configuration version, opens or resolves alerts, opens watch-list cases for high-severity
alerts and sends the notifications. One loan's failure is recorded and the others carry on.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from aoi.model import Loan, Portfolio
from aoi.records import ProgressSummary
from jobs.notify import Notifier, post_webhook, send_email
from risk.alerts import AlertConfig, evaluate_rules, severity_rank
from risk.config import read_alert_config, read_scorecard, read_template
from risk.errors import ConfigVersionNotFoundError, RowProblem
from risk.feeds import parse_market, parse_payments
from risk.figures import DayActivityLike, FeaturePolicy, activity_figures, market_figures, risk_inputs
from risk.messages import evidence_lines, render_message
from risk.records import (
    ActivityFigures,
    DriverContribution,
    MarketObservation,
    Payment,
    RiskAssessment,
    RiskInputs,
)
from risk.scorecard import Scorecard, assess
from store import repo, risk_repo

logger = logging.getLogger(__name__)


ActivityInput = ActivityFigures | Sequence[DayActivityLike]


@dataclass(frozen=True, slots=True)
class FeedImportSummary:
    """What a feed import did: rows accepted (created / updated) and rows rejected with reasons."""

    feed: str
    source: str
    created: int
    updated: int
    rejected: tuple[RowProblem, ...]

    @property
    def accepted(self) -> int:
        """Rows stored."""
        return self.created + self.updated


@dataclass(frozen=True, slots=True)
class LoanRiskOutcome:
    """One loan's result of a scoring run (ok, or failed with the reason).

    Attributes:
        loan_id: The loan.
        site_id: Its site ("" when the loan has no site).
        status: "ok" or "failed".
        reason: Why it failed ("" when ok).
        score_id: Id of the stored score.
        assessment: The score with its explanation.
        alerts_opened: Ids of alerts opened by this run.
        alerts_resolved: Ids of alerts this run resolved (their rule cleared).
        case_id: The watch-list case a high-severity alert opened or joined.
    """

    loan_id: str
    site_id: str
    status: str
    reason: str = ""
    score_id: int | None = None
    assessment: RiskAssessment | None = None
    alerts_opened: tuple[int, ...] = ()
    alerts_resolved: tuple[int, ...] = ()
    case_id: int | None = None


# ---------------------------------------------------------------- feeds


def import_payments(engine: Engine, text: str, *, source: str, today: date | None = None) -> FeedImportSummary:
    """Validate and store a payments CSV; rejected rows are kept with their reasons.

    Raises:
        FeedInvalidError: the file lacks a required column (nothing imported).
    """
    result = parse_payments(text, known_loans=repo.known_loan_ids(engine), today=today)
    created, updated = risk_repo.save_payments(engine, result.accepted, source=source)
    risk_repo.save_rejected(engine, "payments", source, result.rejected)
    logger.info("payments %s: %s stored, %s problem(s)", source, created + updated, len(result.rejected))
    return FeedImportSummary("payments", source, created, updated, result.rejected)


def import_market(engine: Engine, text: str, *, source: str) -> FeedImportSummary:
    """Validate and store a market CSV; rejected rows are kept with their reasons.

    Raises:
        FeedInvalidError: the file lacks a required column (nothing imported).
    """
    result = parse_market(text)
    created, updated = risk_repo.save_market(engine, result.accepted, source=source)
    risk_repo.save_rejected(engine, "market", source, result.rejected)
    logger.info("market %s: %s stored, %s problem(s)", source, created + updated, len(result.rejected))
    return FeedImportSummary("market", source, created, updated, result.rejected)


# ---------------------------------------------------------------- scoring


def _as_activity(value: ActivityInput | None, as_of: date, policy: FeaturePolicy) -> ActivityFigures | None:
    if value is None or isinstance(value, ActivityFigures):
        return value
    return activity_figures(value, as_of, window_days=policy.activity_window_days)


def gather_inputs(
    engine: Engine,
    *,
    as_of: date,
    progress: Mapping[str, ProgressSummary],
    activity: Mapping[str, ActivityInput] | None,
    policy: FeaturePolicy,
    portfolio: Portfolio | None = None,
) -> tuple[list[RiskInputs], list[LoanRiskOutcome]]:
    """Each financed loan's inputs from the store and the given progress and activity (by site id).

    Args:
        engine: The database (payments and market series; the portfolio unless given).
        as_of: The day to gather for.
        progress: Progress summary per site id.
        activity: Sensor activity per site id (None: no sensor data).
        policy: Feature settings from the scorecard.
        portfolio: The stored sites and loans, when the caller has loaded them already.

    Returns:
        The inputs of the loans that could be assembled, and a failed outcome for each other.
    """
    portfolio = portfolio or repo.load_portfolio(engine)
    loans = {ln.id: ln for ln in portfolio.loans}
    payments = risk_repo.load_payments(engine)
    market = [MarketObservation(m.region, m.indicator, m.on, m.value) for m in risk_repo.load_market(engine)]
    # The market signal depends on the region only: computed once per region, not once per loan.
    by_region = {r: market_figures(market, r, as_of, policy=policy) for r in {s.region for s in portfolio.sites}}
    inputs: list[RiskInputs] = []
    failed: list[LoanRiskOutcome] = []
    for site in portfolio.sites:
        try:
            loan = loans[site.loan_id]
            pays = [
                Payment(p.loan_id, p.due_date, p.amount_due, p.paid_date, p.amount_paid, p.restructured)
                for p in payments.get(loan.id, [])
            ]
            loan_inputs = risk_inputs(
                site,
                loan,
                as_of,
                progress=progress.get(site.id),
                activity=_as_activity((activity or {}).get(site.id), as_of, policy),
                payments=pays,
                market=(),  # filled in from the region's figures below
                policy=policy,
            )
            inputs.append(replace(loan_inputs, market=by_region[site.region]))
        except (KeyError, ValueError, ArithmeticError) as exc:
            logger.warning("risk inputs failed for %s: %s", site.loan_id, exc, extra={"site_id": site.id})
            failed.append(LoanRiskOutcome(site.loan_id, site.id, "failed", f"{type(exc).__name__}: {exc}"))
    return inputs, failed


def _score_insert(a: RiskAssessment, inputs: RiskInputs) -> risk_repo.ScoreInsert:
    return risk_repo.ScoreInsert(
        loan_id=a.loan_id,
        site_id=a.site_id,
        as_of=a.as_of,
        config_version=a.config_version,
        config_sha256=a.config_sha256,
        score=a.score,
        pd=a.pd,
        band=a.band,
        colour=a.colour,
        confidence=a.confidence,
        inputs=inputs.to_json(),
        contributions=[asdict(c) for c in a.contributions],
        top_drivers=list(a.top_drivers),
        missing=list(a.missing),
    )


def assessment_from_stored(stored: risk_repo.StoredScore) -> RiskAssessment:
    """The assessment a stored score holds."""
    d = stored.data
    return RiskAssessment(
        loan_id=d.loan_id,
        site_id=d.site_id,
        as_of=d.as_of,
        config_version=d.config_version,
        config_sha256=d.config_sha256,
        score=d.score,
        pd=d.pd,
        band=d.band,
        colour=d.colour,
        confidence=d.confidence,
        contributions=tuple(DriverContribution(**c) for c in d.contributions),
        top_drivers=tuple(d.top_drivers),
        missing=tuple(d.missing),
    )


def rescore(engine: Engine, score_id: int, *, config_dir: Path | None = None) -> RiskAssessment:
    """Recompute a stored score from its stored inputs and the configuration version it names.

    Raises:
        LookupError: no such score, or its configuration version is no longer available.
    """
    stored = risk_repo.get_score(engine, score_id)
    card = read_scorecard(stored.data.config_version, config_dir=config_dir)
    return assess(card, [RiskInputs.from_json(stored.data.inputs)])[0]


def score_portfolio(
    engine: Engine,
    *,
    as_of: date,
    progress: Mapping[str, ProgressSummary],
    activity: Mapping[str, ActivityInput] | None = None,
    config_dir: Path | None = None,
    scorecard_version: str | None = None,
    alerts_version: str | None = None,
    notifier: Notifier | None = None,
    scored_at: datetime | None = None,
    portfolio: Portfolio | None = None,
) -> list[LoanRiskOutcome]:
    """Score every financed loan, store the scores, update alerts and cases, and notify.

    Args:
        engine: The database (portfolio, payments and market series already stored).
        as_of: The day to score for.
        progress: Progress summary per site id (a site without one scores with progress missing).
        activity: Per site id, sensor activity figures or the daily features to derive them from;
            None or an absent site means no sensor data (missing, never good news).
        config_dir: Folder of the scorecard and alert YAML files (default: the shipped ones).
        scorecard_version: e.g. "scorecard-v1" (default: the newest in ``config_dir``).
        alerts_version: e.g. "alerts-v1" (default: the newest).
        notifier: Webhook and e-mail channels; None sends nothing.
        scored_at: Timestamp of the run (default: now, UTC).
        portfolio: The stored sites and loans, when the caller has loaded them (default: loaded here, once).

    Returns:
        One outcome per financed loan, by loan id.
    """
    portfolio = portfolio or repo.load_portfolio(engine)
    card = read_scorecard(scorecard_version, config_dir=config_dir)
    rules = read_alert_config(alerts_version, config_dir=config_dir)
    policy = FeaturePolicy.from_config(card.features)
    inputs, failed = gather_inputs(
        engine, as_of=as_of, progress=progress, activity=activity, policy=policy, portfolio=portfolio
    )
    # one vectorised scoring pass over the book, then store the history
    assessments = assess(card, inputs)
    score_ids = risk_repo.save_scores(
        engine, [_score_insert(a, i) for a, i in zip(assessments, inputs, strict=True)], scored_at=scored_at
    )
    # alerts: evaluate every rule, then open / refresh / resolve in one transaction
    band_order = [b.name for b in card.bands]
    outcomes = [
        o for a, i in zip(assessments, inputs, strict=True) for o in evaluate_rules(rules, i, a, band_order=band_order)
    ]
    changes = risk_repo.apply_rule_outcomes(
        engine,
        outcomes,
        site_ids={i.loan_id: i.site_id for i in inputs},
        score_ids={a.loan_id: sid for a, sid in zip(assessments, score_ids, strict=True)},
        config_version=rules.version,
        now=scored_at,
    )
    cases = _open_cases(engine, rules, changes.opened, as_of)
    if notifier is not None:
        templates = (_template("alert_officer", config_dir), _template("payment_reminder", config_dir))
        loans = {ln.id: ln for ln in portfolio.loans}
        _notify(engine, notifier, rules, card, changes, cases, {i.loan_id: i for i in inputs}, loans, as_of, templates)
    opened: dict[str, list[int]] = defaultdict(list)
    resolved: dict[str, list[int]] = defaultdict(list)
    for alert in changes.opened:
        opened[alert.loan_id].append(alert.id)
    for alert in changes.resolved:
        resolved[alert.loan_id].append(alert.id)
    results = [
        LoanRiskOutcome(
            a.loan_id,
            a.site_id,
            "ok",
            score_id=sid,
            assessment=a,
            alerts_opened=tuple(opened[a.loan_id]),
            alerts_resolved=tuple(resolved[a.loan_id]),
            case_id=cases[a.loan_id][0].id if a.loan_id in cases else None,
        )
        for a, sid in zip(assessments, score_ids, strict=True)
    ]
    for r in results:
        a = r.assessment
        if a is not None:
            logger.info(
                "risk %s: %.0f %s (confidence %.2f), %s alert(s) opened",
                r.loan_id,
                a.score,
                a.band,
                a.confidence,
                len(r.alerts_opened),
                extra={"site_id": r.site_id},
            )
    return sorted([*results, *failed], key=lambda r: r.loan_id)


def _template(name: str, config_dir: Path | None) -> str:
    """A message template from ``config_dir/templates``, else the shipped one."""
    try:
        return read_template(name, config_dir=config_dir)
    except ConfigVersionNotFoundError:
        return read_template(name)


def _open_cases(
    engine: Engine, rules: AlertConfig, opened: Sequence[risk_repo.AlertRecord], as_of: date
) -> dict[str, tuple[risk_repo.CaseRecord, bool]]:
    threshold = severity_rank(rules.case_severity)
    by_loan: dict[str, list[risk_repo.AlertRecord]] = defaultdict(list)
    for alert in opened:
        if severity_rank(alert.severity) >= threshold:
            by_loan[alert.loan_id].append(alert)
    requests = [
        risk_repo.CaseRequest(
            loan_id,
            severity=max((a.severity for a in alerts), key=severity_rank),
            reason="; ".join(a.title for a in alerts),
            tasks=rules.case_tasks(as_of),
            alert_ids=[a.id for a in alerts],
        )
        for loan_id, alerts in sorted(by_loan.items())
    ]
    # one transaction for the whole book (a large run opens thousands of cases)
    return risk_repo.open_cases(engine, requests) if requests else {}


def _alert_payload(alert: risk_repo.AlertRecord) -> dict[str, Any]:
    return {
        "alert": {
            "id": alert.id,
            "loan_id": alert.loan_id,
            "site_id": alert.site_id,
            "rule_id": alert.rule_id,
            "severity": alert.severity,
            "title": alert.title,
            "status": alert.status,
            "evidence": alert.evidence,
            "opened_at": alert.opened_at.isoformat(),
            "resolution": alert.resolution,
        }
    }


def _notify(
    engine: Engine,
    notifier: Notifier,
    rules: AlertConfig,
    card: Scorecard,
    changes: risk_repo.AlertChanges,
    cases: Mapping[str, tuple[risk_repo.CaseRecord, bool]],
    inputs: Mapping[str, RiskInputs],
    loans: Mapping[str, Loan],
    as_of: date,
    templates: tuple[str, str],
) -> None:
    remind = {r.id for r in rules.rules if r.remind_borrower}
    officer_template, reminder_template = templates
    for alert in changes.opened:
        rank = severity_rank(alert.severity)
        if notifier.webhook and rank >= severity_rank(rules.webhook_min_severity):
            post_webhook(
                engine,
                notifier.webhook,
                kind="alert.opened",
                payload=_alert_payload(alert),
                loan_id=alert.loan_id,
                alert_id=alert.id,
                sleep=notifier.sleep,
            )
        loan = loans.get(alert.loan_id)
        officer = notifier.officer_for(alert.loan_id)
        if notifier.smtp and officer and rank >= severity_rank(rules.email_min_severity):
            msg = render_message(
                officer_template,
                {
                    "alert_id": alert.id,
                    "loan_id": alert.loan_id,
                    "site_id": alert.site_id,
                    "borrower": loan.borrower if loan else "",
                    "opened_at": alert.opened_at.isoformat(timespec="seconds"),
                    "rule_id": alert.rule_id,
                    "severity": alert.severity.upper(),
                    "title": alert.title,
                    "score": alert.evidence.get("score"),
                    "band": alert.evidence.get("band"),
                    "config_version": f"{card.version} / {rules.version}",
                    "evidence": evidence_lines(alert.evidence),
                },
            )
            send_email(
                engine,
                notifier.smtp,
                to=officer,
                subject=msg.subject,
                body=msg.body,
                kind="alert",
                loan_id=alert.loan_id,
                alert_id=alert.id,
            )
        borrower = notifier.borrower_for(alert.loan_id)
        if notifier.smtp and borrower and alert.rule_id in remind and loan is not None:
            rep = inputs[alert.loan_id].repayment if alert.loan_id in inputs else None
            msg = render_message(
                reminder_template,
                {
                    "loan_id": loan.id,
                    "borrower": loan.borrower,
                    "currency": loan.currency,
                    "amount_overdue": rep.amount_overdue if rep else None,
                    "oldest_unpaid_due": rep.oldest_unpaid_due.isoformat() if rep and rep.oldest_unpaid_due else None,
                    "days_past_due": int(rep.days_past_due) if rep and rep.days_past_due is not None else None,
                    "as_of": as_of.isoformat(),
                    "officer": officer or "your relationship manager",
                },
            )
            send_email(
                engine,
                notifier.smtp,
                to=borrower,
                subject=msg.subject,
                body=msg.body,
                kind="payment_reminder",
                loan_id=loan.id,
                alert_id=alert.id,
            )
    if notifier.webhook:
        for alert in changes.resolved:
            post_webhook(
                engine,
                notifier.webhook,
                kind="alert.resolved",
                payload=_alert_payload(alert),
                loan_id=alert.loan_id,
                alert_id=alert.id,
                sleep=notifier.sleep,
            )
        for case, created in cases.values():
            if created:
                payload = {"case": {**asdict(case), "tasks": [asdict(t) for t in case.tasks]}}
                post_webhook(
                    engine,
                    notifier.webhook,
                    kind="case.opened",
                    payload=payload,
                    loan_id=case.loan_id,
                    case_id=case.id,
                    sleep=notifier.sleep,
                )


def latest_assessments(engine: Engine) -> list[tuple[risk_repo.StoredScore, RiskAssessment]]:
    """The newest stored score of every loan with its assessment, by loan id."""
    return [(s, assessment_from_stored(s)) for s in risk_repo.latest_scores(engine)]
