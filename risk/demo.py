"""Demo risk data that follows each demo site's fate (pure, deterministic).

* Payments: on-track, ahead and finished borrowers pay every instalment on its due date; the
  late site's borrower pays on time until the works fall behind, then stops (more than 30 days
  past due at ``DEMO_AS_OF``); the stalled site's borrower pays only part of each instalment
  after the stall; the cancelled site's borrower stops paying when the project is abandoned.
* Market: monthly regional indicators with a 12-month trend per region (Brazil falls hard).
* Progress and activity: synthetic stand-ins built from the fate curves, for tests and for a
  demo run before the imagery and sensor stages have produced anything.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

from aoi.demo import DEMO_AS_OF, Fate, fate_curve
from aoi.model import Portfolio, Site
from aoi.records import ProgressEvent, ProgressSummary
from risk.records import ActivityFigures, MarketObservation, Payment

#: Share of each instalment the stalled borrower pays after the stall.
STALLED_PAID_SHARE = 0.85
#: Days before ``as_of`` from which the late borrower stops paying.
LATE_STOPS_DAYS = 90

#: Twelve-month trend per region and indicator (fraction per year) behind the demo series.
_MARKET_TRENDS: dict[str, dict[str, float]] = {
    "ES-AN": {"construction_output": 0.04, "building_permits": 0.06, "construction_costs": 0.03},
    "DE-BY": {"construction_output": -0.02, "building_permits": -0.06, "construction_costs": 0.04},
    "IN-MH": {"construction_output": -0.03, "building_permits": -0.08, "construction_costs": 0.06},
    "KE-22": {"construction_output": 0.07, "building_permits": 0.09, "construction_costs": 0.05},
    "BR-SP": {"construction_output": -0.15, "building_permits": -0.25, "construction_costs": 0.12},
    "AU-QLD": {"construction_output": 0.02, "building_permits": 0.03, "construction_costs": 0.02},
}


def _fate(site: Site) -> Fate | None:
    raw = site.properties.get("fate")
    return Fate(raw) if raw else None


def demo_payments(portfolio: Portfolio, as_of: date = DEMO_AS_OF) -> list[Payment]:
    """The servicing feed of the demo loans up to ``as_of``, following each site's fate."""
    loans = {ln.id: ln for ln in portfolio.loans}
    out: list[Payment] = []
    for site in portfolio.sites:
        fate, loan = _fate(site), loans.get(site.loan_id)
        if fate is None or loan is None:
            continue
        curve = fate_curve(site)
        event = curve.event_day if curve else None
        for inst in loan.repayments:
            if inst.on > as_of:
                break
            paid_on: date | None = inst.on
            amount = inst.amount
            if fate is Fate.LATE and inst.on > as_of - timedelta(days=LATE_STOPS_DAYS):
                paid_on, amount = None, 0.0
            elif fate is Fate.STALLED and event is not None and inst.on > event:
                amount = round(inst.amount * STALLED_PAID_SHARE, 2)
            elif fate is Fate.CANCELLED and event is not None and inst.on > event:
                paid_on, amount = None, 0.0
            out.append(Payment(loan.id, inst.on, inst.amount, paid_on, amount, False))
    return out


def _first_of_months(start: date, end: date) -> list[date]:
    days, y, m = [], start.year, start.month
    while date(y, m, 1) <= end:
        days.append(date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return days


def demo_market_series(start: date = date(2024, 1, 1), end: date = date(2026, 10, 1)) -> list[MarketObservation]:
    """Monthly index values (base 100 at ``start``) per demo region and indicator.

    Each series grows at its yearly trend with a 12-month seasonal wiggle, so any 12-month
    change equals the trend exactly.
    """
    out: list[MarketObservation] = []
    for region, trends in _MARKET_TRENDS.items():
        for indicator, rate in trends.items():
            for k, on in enumerate(_first_of_months(start, end)):
                season = 1.0 + 0.01 * math.sin(2 * math.pi * k / 12)
                out.append(MarketObservation(region, indicator, on, round(100.0 * (1 + rate) ** (k / 12) * season, 4)))
    return out


def market_csv(observations: list[MarketObservation]) -> str:
    """Observations in the ``sitewatch market import`` CSV format."""
    lines = ["region,indicator,date,value"]
    lines += [f"{o.region},{o.indicator},{o.on.isoformat()},{o.value}" for o in observations]
    return "\n".join(lines) + "\n"


def synthetic_progress(site: Site, as_of: date = DEMO_AS_OF, *, stall_days: int = 28) -> ProgressSummary | None:
    """A progress summary read off the site's fate curve (None for a site without a fate).

    A stand-in for the imagery stage's output: observed = true percent, a +-3 pp band, 20 scenes.
    """
    curve = fate_curve(site)
    if curve is None:
        return None
    plan = site.plan
    observed = round(curve.percent(as_of), 2)
    planned = round(plan.planned_percent(as_of), 2)
    earned = plan.date_for_percent(observed)
    slip = (as_of - earned).days if earned else None
    if slip is not None and observed >= 100.0 - 1e-6:
        slip = min(slip, 0)  # complete: the plan's end date is history, not a growing delay
    events: tuple[ProgressEvent, ...] = ()
    stalled = False
    if curve.event_day is not None and (as_of - curve.event_day).days >= stall_days:
        stalled = curve.fate in (Fate.STALLED, Fate.CANCELLED)
        if curve.fate is Fate.CANCELLED:
            drop = round(curve.percent(curve.event_day) - observed, 2)
            events = (ProgressEvent("reversal", curve.event_day + timedelta(days=30), "cleared pad regrowing", drop),)
    return ProgressSummary(
        site_id=site.id,
        as_of=as_of,
        planned_pct=planned,
        observed_pct=observed,
        lower_pct=max(observed - 3.0, 0.0),
        upper_pct=min(observed + 3.0, 100.0),
        deviation_pp=round(observed - planned, 2),
        slip_days=slip,
        rate_pp_per_week=None,
        forecast_completion=None,
        forecast_early=None,
        forecast_late=None,
        stalled=stalled,
        outside_activity_pct=0.0,
        events=events,
        scenes_used=20,
        scenes_skipped=4,
        last_observation=as_of - timedelta(days=3),
        method="synthetic:fate",
    )


def synthetic_activity(site: Site) -> ActivityFigures | None:
    """Sensor activity as the site's fate would show it (None for a site without a fate)."""
    fate = _fate(site)
    table = {
        Fate.ON_TRACK: ActivityFigures(1.0, 2.0, 14),
        Fate.AHEAD: ActivityFigures(1.1, 1.0, 14),
        Fate.LATE: ActivityFigures(0.55, 8.0, 14),
        Fate.STALLED: ActivityFigures(0.05, 400.0, 2),
        Fate.CANCELLED: ActivityFigures(None, 5000.0, 0),
        Fate.FINISHED: ActivityFigures(0.1, 30.0, 10),
    }
    return table.get(fate) if fate else None


def demo_contacts(portfolio: Portfolio) -> dict[str, tuple[str, str]]:
    """Per demo loan, (officer in charge, borrower) e-mail addresses on reserved example domains."""
    return {
        site.loan_id: (f"officer.{site.region.lower()}@bank.example", f"accounts@{site.id}.example")
        for site in portfolio.sites
    }
