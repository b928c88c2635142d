"""Risk records: feed rows, the figures derived from them, a loan's inputs and its assessment.

Every figure is optional: ``None`` means *not known* (no feed, no observation), which the
scorecard treats as missing, never as good news. Amounts are in the loan's currency,
percentages are 0-100 and ``*_pp`` are percentage points.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import date
from typing import Any


@dataclass(frozen=True, slots=True)
class Payment:
    """One instalment of a loan as reported by the servicing feed.

    Attributes:
        loan_id: The loan.
        due_date: When the instalment falls due.
        amount_due: Amount due, > 0.
        paid_date: When it was (last) paid; None while unpaid.
        amount_paid: Amount paid against it, >= 0 (0 while unpaid).
        restructured: The instalment was rescheduled or changed under a restructuring.
    """

    loan_id: str
    due_date: date
    amount_due: float
    paid_date: date | None = None
    amount_paid: float = 0.0
    restructured: bool = False


@dataclass(frozen=True, slots=True)
class MarketObservation:
    """One value of a regional market indicator (e.g. a construction output index)."""

    region: str
    indicator: str
    on: date
    value: float


@dataclass(frozen=True, slots=True)
class ProgressFigures:
    """What the risk score reads from a site's progress summary.

    Attributes:
        planned_pct: Plan's percent complete at ``as_of`` (0-100).
        observed_pct: Fitted observed percent complete; None when never observed.
        deviation_pp: ``observed_pct - planned_pct``.
        slip_days: Days behind plan (earned schedule), negative when ahead.
        stalled: 1.0 when stalled (or a reversal was flagged), 0.0 when not, None when unknown.
        band_pp: Width of the confidence band (upper - lower), pp.
        scenes_used: Scenes that gave an estimate.
        outside_activity_pct: Share of the site outside the footprints that changed.
        reversals: Reversal events flagged (demolition, cancelled works).
    """

    planned_pct: float | None = None
    observed_pct: float | None = None
    deviation_pp: float | None = None
    slip_days: float | None = None
    stalled: float | None = None
    band_pp: float | None = None
    scenes_used: int = 0
    outside_activity_pct: float | None = None
    reversals: int = 0


@dataclass(frozen=True, slots=True)
class ActivityFigures:
    """Site activity from sensors.

    Attributes:
        activity_index: Mean daily activity index over the recent window (1 = usual, 0 = idle).
        silence_hours: Hours since the site's last reading at ``as_of``.
        days_with_data: Days of the window with any reading.
    """

    activity_index: float | None = None
    silence_hours: float | None = None
    days_with_data: int = 0


@dataclass(frozen=True, slots=True)
class RepaymentFigures:
    """Repayment behaviour derived from the servicing feed.

    Attributes:
        days_past_due: Days since the oldest instalment still materially unpaid (0 when current).
        amount_overdue: Unpaid amount of instalments due before ``as_of``.
        oldest_unpaid_due: Due date of the oldest materially unpaid instalment.
        paid_ratio_12m: Paid / due over instalments due in the trailing 365 days (None if none due).
        partial_payments_12m: Instalments of that window paid in part only.
        late_payments_12m: Instalments of that window paid in full but after the grace days.
        restructurings: Instalments flagged as restructured, ever.
        instalments_due: Instalments due on or before ``as_of``.
    """

    days_past_due: float | None = None
    amount_overdue: float | None = None
    oldest_unpaid_due: date | None = None
    paid_ratio_12m: float | None = None
    partial_payments_12m: float | None = None
    late_payments_12m: float | None = None
    restructurings: float | None = None
    instalments_due: int = 0


@dataclass(frozen=True, slots=True)
class DrawdownFigures:
    """Money out against work done.

    Attributes:
        disbursed_pct: Share of the commitment drawn by ``as_of`` (0-100).
        earned_disbursed_pct: Share the drawdown schedule releases by the day the plan expected
            the observed progress (what the work done has earned).
        money_ahead_pp: ``disbursed_pct - earned_disbursed_pct``; positive = money ahead of works.
    """

    disbursed_pct: float | None = None
    earned_disbursed_pct: float | None = None
    money_ahead_pp: float | None = None


@dataclass(frozen=True, slots=True)
class MarketFigures:
    """The regional market signal for the site's region.

    Attributes:
        change_pct: Mean 12-month change of the configured indicators (percent).
        latest: Day of the newest observation used.
        indicators: Per indicator, its 12-month change in percent.
    """

    change_pct: float | None = None
    latest: date | None = None
    indicators: dict[str, float] = field(default_factory=dict)


def _numeric_fields(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if str(f.type).split(" |")[0] in ("float", "int")]


#: Feature name -> (part of :class:`RiskInputs`, attribute): every numeric figure, by its own name,
#: and the market change as ``market_change_pct``.
FEATURE_FIELDS: dict[str, tuple[str, str]] = {
    **{
        name: (part, name)
        for part, cls in (
            ("progress", ProgressFigures),
            ("activity", ActivityFigures),
            ("repayment", RepaymentFigures),
            ("drawdown", DrawdownFigures),
        )
        for name in _numeric_fields(cls)
    },
    "market_change_pct": ("market", "change_pct"),
}


@dataclass(frozen=True, slots=True)
class RiskInputs:
    """Everything a loan's score is computed from (stored with the score, so it can be recomputed).

    Attributes:
        loan_id: The loan.
        site_id: The site it finances.
        region: The site's region (market signals).
        as_of: The day the figures are for.
        progress: Progress against plan.
        activity: Sensor activity.
        repayment: Repayment behaviour.
        drawdown: Drawdowns against progress.
        market: Regional market signal.
        not_applicable: Features that do not apply (e.g. site activity once works are complete);
            they score as neutral and do not lower confidence.
    """

    loan_id: str
    site_id: str
    region: str
    as_of: date
    progress: ProgressFigures = field(default_factory=ProgressFigures)
    activity: ActivityFigures = field(default_factory=ActivityFigures)
    repayment: RepaymentFigures = field(default_factory=RepaymentFigures)
    drawdown: DrawdownFigures = field(default_factory=DrawdownFigures)
    market: MarketFigures = field(default_factory=MarketFigures)
    not_applicable: tuple[str, ...] = ()

    def features(self) -> dict[str, float | None]:
        """Numeric features by name (the names scorecard drivers and alert rules refer to)."""
        out: dict[str, float | None] = {}
        for name, (part, attr) in FEATURE_FIELDS.items():
            value = getattr(getattr(self, part), attr)
            out[name] = None if value is None else float(value)
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO text) that :meth:`from_json` reads back exactly."""
        raw = asdict(self)
        raw["as_of"] = self.as_of.isoformat()
        raw["not_applicable"] = list(self.not_applicable)
        rep = raw["repayment"]
        rep["oldest_unpaid_due"] = _iso(self.repayment.oldest_unpaid_due)
        raw["market"]["latest"] = _iso(self.market.latest)
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RiskInputs:
        """Rebuild inputs stored with :meth:`to_json`."""
        rep = dict(raw["repayment"])
        rep["oldest_unpaid_due"] = _date(rep.get("oldest_unpaid_due"))
        market = dict(raw["market"])
        market["latest"] = _date(market.get("latest"))
        return cls(
            loan_id=raw["loan_id"],
            site_id=raw["site_id"],
            region=raw["region"],
            as_of=date.fromisoformat(raw["as_of"]),
            progress=ProgressFigures(**raw["progress"]),
            activity=ActivityFigures(**raw["activity"]),
            repayment=RepaymentFigures(**rep),
            drawdown=DrawdownFigures(**raw["drawdown"]),
            market=MarketFigures(**market),
            not_applicable=tuple(raw.get("not_applicable", ())),
        )


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


@dataclass(frozen=True, slots=True)
class DriverContribution:
    """How one driver of the scorecard scored for one loan.

    Attributes:
        driver: Driver name (as in the scorecard config).
        feature: The input feature it bins.
        value: The feature's value (None when missing or not applicable).
        bin: Label of the bin it fell in ("missing", "not applicable" or e.g. "[30, 60)").
        points: Points it earned.
        shortfall: Points short of the driver's best bin (what it costs the loan).
        status: "ok", "missing" or "not_applicable".
    """

    driver: str
    feature: str
    value: float | None
    bin: str
    points: float
    shortfall: float
    status: str


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """A loan's score, with everything needed to explain and recompute it.

    Attributes:
        loan_id: The loan.
        site_id: The site.
        as_of: Day of the inputs.
        config_version: Scorecard version that produced it (e.g. "scorecard-v1").
        config_sha256: Hash of that configuration's text (detects an edited file).
        score: Points on the scorecard's scale (higher is safer).
        pd: Probability-of-default-like figure implied by the score's odds, 0-1.
        band: Rating band "A" (best) .. "E".
        colour: "green", "amber" or "red".
        confidence: Share of the scorecard's weight backed by known inputs, 0-1.
        contributions: One per driver, in scorecard order.
        top_drivers: Drivers costing the most points, worst first.
        missing: Drivers whose input was missing.
    """

    loan_id: str
    site_id: str
    as_of: date
    config_version: str
    config_sha256: str
    score: float
    pd: float
    band: str
    colour: str
    confidence: float
    contributions: tuple[DriverContribution, ...]
    top_drivers: tuple[str, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """One alert rule evaluated for one loan.

    Attributes:
        rule_id: The rule.
        loan_id: The loan.
        state: "fired", "clear" or "unknown" (its input is missing: an open alert stays open).
        dedupe_key: Identifies the condition; at most one unresolved alert per key.
        severity: "low", "medium" or "high".
        title: Human summary.
        evidence: Figures that support it (inputs, thresholds, the score).
        remind_borrower: Send the borrower a payment reminder when it opens.
    """

    rule_id: str
    loan_id: str
    state: str
    dedupe_key: str
    severity: str
    title: str
    evidence: dict[str, Any]
    remind_borrower: bool = False
