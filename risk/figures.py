"""Derive a loan's risk figures from domain records (pure: records in, figures out).

Repayment follows the usual servicing conventions: an instalment is past due from the day
after its due date; days past due count from the oldest instalment whose unpaid part is
*material*. Materiality follows the EBA guidelines on the definition of default
(EBA/GL/2016/07 and Regulation (EU) 2018/1845): the amount past due must exceed both an
absolute and a relative threshold (a share of the exposure outstanding).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from aoi.model import Loan, Plan, Site
from aoi.records import ProgressSummary
from risk.records import (
    ActivityFigures,
    DrawdownFigures,
    MarketFigures,
    MarketObservation,
    Payment,
    ProgressFigures,
    RepaymentFigures,
    RiskInputs,
)

#: Features that describe construction activity; they do not apply once the works are complete.
ACTIVITY_FEATURES = ("activity_index", "silence_hours")


@dataclass(frozen=True, slots=True)
class FeaturePolicy:
    """Settings of the feature derivation (the ``features`` section of the scorecard YAML).

    Attributes:
        grace_days: A full payment up to this many days after the due date is not late.
        materiality_relative_pct: Past-due amount must exceed this share of the outstanding.
        materiality_absolute: ... and this amount (loan currency).
        activity_window_days: Days of sensor features averaged into the activity index.
        market_indicators: Indicator name to direction (+1: a rise is good, -1: a rise is bad).
        market_lookback_days: The market change is measured over this many days.
        market_max_age_days: A newest observation older than this makes the signal missing.
        market_tolerance_days: How far the reference observation may lie from the lookback day.
        completion_pct: Observed and planned both at or above this: the works are complete.
    """

    grace_days: int = 5
    materiality_relative_pct: float = 1.0
    materiality_absolute: float = 0.0
    activity_window_days: int = 14
    market_indicators: Mapping[str, int] = field(default_factory=lambda: {"construction_output": 1})
    market_lookback_days: int = 365
    market_max_age_days: int = 120
    market_tolerance_days: int = 45
    completion_pct: float = 99.0

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> FeaturePolicy:
        """Read the ``features`` section (``repayment``, ``activity``, ``market`` sub-sections)."""
        rep = dict(section.get("repayment", {}))
        act = dict(section.get("activity", {}))
        mkt = dict(section.get("market", {}))
        default = cls()
        return cls(
            grace_days=int(rep.get("grace_days", default.grace_days)),
            materiality_relative_pct=float(rep.get("materiality_relative_pct", default.materiality_relative_pct)),
            materiality_absolute=float(rep.get("materiality_absolute", default.materiality_absolute)),
            activity_window_days=int(act.get("window_days", default.activity_window_days)),
            market_indicators={str(k): int(v) for k, v in mkt.get("indicators", default.market_indicators).items()},
            market_lookback_days=int(mkt.get("lookback_days", default.market_lookback_days)),
            market_max_age_days=int(mkt.get("max_age_days", default.market_max_age_days)),
            market_tolerance_days=int(mkt.get("tolerance_days", default.market_tolerance_days)),
            completion_pct=float(section.get("completion_pct", default.completion_pct)),
        )


class DayActivityLike(Protocol):
    """One day of a site's sensor features (``iot.features.SiteDayFeatures`` fits)."""

    @property
    def day(self) -> date: ...  # noqa: D102
    @property
    def activity_index(self) -> float | None: ...  # noqa: D102
    @property
    def hours_since_last_reading(self) -> float | None: ...  # noqa: D102
    @property
    def readings(self) -> int: ...  # noqa: D102


def progress_figures(summary: ProgressSummary | None) -> ProgressFigures:
    """The figures the score reads from a progress summary (all missing when there is none)."""
    if summary is None or summary.observed_pct is None or summary.scenes_used == 0:
        planned = summary.planned_pct if summary else None
        return ProgressFigures(planned_pct=planned, scenes_used=summary.scenes_used if summary else 0)
    band = None
    if summary.lower_pct is not None and summary.upper_pct is not None:
        band = summary.upper_pct - summary.lower_pct
    reversals = sum(1 for e in summary.events if e.kind == "reversal")
    return ProgressFigures(
        planned_pct=summary.planned_pct,
        observed_pct=summary.observed_pct,
        deviation_pp=summary.deviation_pp,
        slip_days=None if summary.slip_days is None else float(summary.slip_days),
        stalled=1.0 if summary.stalled or reversals else 0.0,
        band_pp=band,
        scenes_used=summary.scenes_used,
        outside_activity_pct=summary.outside_activity_pct,
        reversals=reversals,
    )


def activity_figures(days: Sequence[DayActivityLike], as_of: date, *, window_days: int = 14) -> ActivityFigures:
    """Mean activity index over the ``window_days`` ending ``as_of``, and silence at ``as_of``.

    Gap days (no index) are left out of the mean; with no day at all both figures are missing.
    """
    start = as_of - timedelta(days=window_days - 1)
    window = [d for d in days if start <= d.day <= as_of]
    indices = [d.activity_index for d in window if d.activity_index is not None]
    last = max((d for d in days if d.day <= as_of), key=lambda d: d.day, default=None)
    return ActivityFigures(
        activity_index=statistics.fmean(indices) if indices else None,
        silence_hours=last.hours_since_last_reading if last is not None else None,
        days_with_data=sum(1 for d in window if d.readings > 0),
    )


def repayment_figures(
    payments: Iterable[Payment], as_of: date, *, outstanding: float, policy: FeaturePolicy | None = None
) -> RepaymentFigures:
    """Days past due, arrears, partial and late payments and restructurings of one loan.

    Only what was known by the end of ``as_of`` counts: a payment dated later is unpaid.

    Args:
        payments: The loan's instalments from the servicing feed (any order).
        as_of: The day the figures are for.
        outstanding: Exposure outstanding (for the relative materiality threshold).
        policy: Grace days and materiality thresholds.

    Returns:
        All figures missing when the feed has no instalment for the loan.
    """
    policy = policy or FeaturePolicy()
    items = sorted(payments, key=lambda p: p.due_date)
    if not items:
        return RepaymentFigures()
    due = [p for p in items if p.due_date <= as_of]

    def paid(p: Payment) -> float:
        return p.amount_paid if p.paid_date is not None and p.paid_date <= as_of else 0.0

    # arrears: instalments past their due date with an unpaid part, oldest first
    arrears = [(p, max(p.amount_due - paid(p), 0.0)) for p in due if p.due_date < as_of]
    arrears = [(p, gap) for p, gap in arrears if gap > 1e-9 * p.amount_due]
    overdue = sum(gap for _, gap in arrears)
    threshold = max(policy.materiality_absolute, policy.materiality_relative_pct / 100.0 * max(outstanding, 0.0))
    days_past_due = 0.0
    oldest: date | None = None
    if arrears and overdue > threshold:
        oldest = arrears[0][0].due_date
        days_past_due = float((as_of - oldest).days)
    # the trailing year: paid ratio, partial and late payments
    window = [p for p in due if p.due_date > as_of - timedelta(days=365)]
    total_due = sum(p.amount_due for p in window)
    ratio = min(sum(paid(p) for p in window) / total_due, 1.0) if total_due > 0 else None
    partial = sum(1 for p in window if 0 < paid(p) < p.amount_due * (1 - 1e-9))
    late = sum(
        1
        for p in window
        if paid(p) >= p.amount_due * (1 - 1e-9)
        and p.paid_date is not None
        and (p.paid_date - p.due_date).days > policy.grace_days
    )
    return RepaymentFigures(
        days_past_due=days_past_due,
        amount_overdue=round(overdue, 2),
        oldest_unpaid_due=oldest,
        paid_ratio_12m=ratio,
        partial_payments_12m=float(partial),
        late_payments_12m=float(late),
        restructurings=float(sum(1 for p in items if p.restructured)),
        instalments_due=len(due),
    )


def drawdown_figures(loan: Loan, plan: Plan, observed_pct: float | None, as_of: date) -> DrawdownFigures:
    """Money drawn against what the observed works have earned under the drawdown schedule.

    The earned share is what the schedule releases by the day the plan expected the observed
    progress (earned schedule), so a front-loaded schedule on plan shows no gap, while money
    drawn for works not yet seen shows as ``money_ahead_pp > 0``.
    """
    if loan.amount <= 0:
        return DrawdownFigures()
    disbursed = 100.0 * sum(d.amount for d in loan.disbursements if d.on <= as_of) / loan.amount
    if observed_pct is None:
        return DrawdownFigures(disbursed_pct=disbursed)
    earned_day = plan.date_for_percent(observed_pct) if observed_pct > 0 else plan.start - timedelta(days=1)
    earned_day = min(earned_day or as_of, as_of)
    earned = 100.0 * sum(d.amount for d in loan.disbursements if d.on <= earned_day) / loan.amount
    return DrawdownFigures(disbursed_pct=disbursed, earned_disbursed_pct=earned, money_ahead_pp=disbursed - earned)


def market_figures(
    observations: Iterable[MarketObservation], region: str, as_of: date, *, policy: FeaturePolicy | None = None
) -> MarketFigures:
    """The region's market signal: mean signed change of the configured indicators over the lookback.

    Each indicator's change is ``(latest / reference - 1) * 100`` times its direction, where
    ``latest`` is its newest value on or before ``as_of`` (no older than ``market_max_age_days``)
    and ``reference`` the value nearest ``latest.on - lookback`` within the tolerance.
    """
    policy = policy or FeaturePolicy()
    series: dict[str, list[MarketObservation]] = defaultdict(list)
    for obs in observations:
        if obs.region == region and obs.indicator in policy.market_indicators and obs.on <= as_of:
            series[obs.indicator].append(obs)
    changes: dict[str, float] = {}
    newest: date | None = None
    for name, items in sorted(series.items()):
        items.sort(key=lambda o: o.on)
        latest = items[-1]
        if (as_of - latest.on).days > policy.market_max_age_days:
            continue
        target = latest.on - timedelta(days=policy.market_lookback_days)
        ref = min(items, key=lambda o: abs((o.on - target).days))
        if abs((ref.on - target).days) > policy.market_tolerance_days or ref.value == 0:
            continue
        changes[name] = policy.market_indicators[name] * (latest.value / ref.value - 1.0) * 100.0
        newest = max(newest or latest.on, latest.on)
    if not changes:
        return MarketFigures()
    return MarketFigures(change_pct=statistics.fmean(changes.values()), latest=newest, indicators=changes)


def risk_inputs(
    site: Site,
    loan: Loan,
    as_of: date,
    *,
    progress: ProgressSummary | None,
    activity: ActivityFigures | None,
    payments: Sequence[Payment] | None,
    market: Iterable[MarketObservation],
    policy: FeaturePolicy | None = None,
) -> RiskInputs:
    """Assemble a loan's risk inputs from its site's records (anything absent stays missing).

    Args:
        site: The financed site (plan and region).
        loan: The loan (drawdowns, outstanding).
        as_of: The day the figures are for.
        progress: The site's progress summary, None when there is none.
        activity: Sensor activity figures, None when the site has no sensors.
        payments: The loan's instalments from the servicing feed (None or empty: no feed).
        market: Market observations (any region; the site's region is picked).
        policy: Feature settings from the scorecard.
    """
    policy = policy or FeaturePolicy()
    prog = progress_figures(progress)
    complete = (
        prog.observed_pct is not None
        and prog.observed_pct >= policy.completion_pct
        and (prog.planned_pct or 0.0) >= policy.completion_pct
    )
    rep = repayment_figures(payments or (), as_of, outstanding=loan.outstanding or loan.amount, policy=policy)
    return RiskInputs(
        loan_id=loan.id,
        site_id=site.id,
        region=site.region,
        as_of=as_of,
        progress=prog,
        activity=activity or ActivityFigures(),
        repayment=rep,
        drawdown=drawdown_figures(loan, site.plan, prog.observed_pct, as_of),
        market=market_figures(market, site.region, as_of, policy=policy),
        not_applicable=ACTIVITY_FEATURES if complete else (),
    )
