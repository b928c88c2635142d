"""The demo portfolio: six financed sites on four continents, each with its own fate.

The fates are the hidden truth the simulators (imagery, sensors, repayments) follow,
so the demo shows each outcome end to end. Sites span several UTM zones; one straddles
the 12 deg E zone boundary and three lie in the southern hemisphere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
from shapely.geometry import MultiPolygon, Polygon, box

from aoi.model import Loan, Phase, Plan, Portfolio, ScheduledAmount, Site

#: The demo's "today": fixed so the demo and its simulated data are reproducible.
DEMO_AS_OF = date(2026, 11, 1)


class Fate(StrEnum):
    """How a simulated project actually unfolds."""

    ON_TRACK = "on_track"
    LATE = "late"
    STALLED = "stalled"
    AHEAD = "ahead"
    CANCELLED = "cancelled"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class FateCurve:
    """The true percent complete of a simulated site over time.

    Attributes:
        fate: The scenario.
        plan: The site's plan (the curve is a distortion of it).
        event_day: When a stall or cancellation happens (None otherwise).
        speed: Actual pace relative to plan (1 = on plan).
    """

    fate: Fate
    plan: Plan
    event_day: date | None = None
    speed: float = 1.0

    def percent(self, on: date) -> float:
        """True percent complete (0-100) at the end of ``on``."""
        s = self.plan.start
        if self.fate is Fate.STALLED and self.event_day is not None and on > self.event_day:
            on = self.event_day
        if self.fate is Fate.CANCELLED and self.event_day is not None:
            # Clearing only (first phase), then the pad returns to vegetation over ~90 days.
            first = self.plan.phases[0]
            cleared = 100.0 * first.weight * first.planned_fraction(min(on, self.event_day))
            if on <= self.event_day:
                return cleared
            regrow = min(1.0, (on - self.event_day).days / 90.0)
            return cleared * (1.0 - regrow)
        shifted = s + timedelta(days=math.floor((on - s).days * self.speed))
        return self.plan.planned_percent(shifted)

    def phase_fraction(self, phase_index: int, on: date) -> float:
        """True done share (0-1) of one phase: phases complete in plan order at the actual pace."""
        phases = self.plan.phases
        total = sum(p.weight for p in phases)
        pct = self.percent(on)
        if self.fate is Fate.CANCELLED:
            return pct / (100.0 * phases[0].weight / total) if phase_index == 0 else 0.0
        # Invert the plan at the true percent: the date the plan would be at, then each phase there.
        when = self.plan.date_for_percent(pct) if pct > 0 else None
        if when is None:
            return 1.0 if pct >= 100.0 - 1e-9 else 0.0
        return phases[phase_index].planned_fraction(when)


def fate_curve(site: Site) -> FateCurve | None:
    """The truth curve of a demo or simulated site, from its ``fate`` properties; None if it has none."""
    raw = site.properties.get("fate")
    if raw is None:
        return None
    fate = Fate(raw)
    event = site.properties.get("fate_event_day")
    speed = float(site.properties.get("fate_speed", 1.0))
    return FateCurve(fate, site.plan, date.fromisoformat(event) if event else None, speed)


@dataclass(frozen=True, slots=True)
class _DemoSpec:
    id: str
    name: str
    borrower: str
    region: str
    lon: float
    lat: float
    fate: Fate
    start: date
    months: int
    amount: float
    currency: str
    speed: float = 1.0
    event_day: date | None = None


_SPECS = (
    _DemoSpec(
        "es-sev-solar",
        "Guadalquivir solar farm",
        "Solaria Sur SL",
        "ES-AN",
        -5.93,
        37.42,
        Fate.ON_TRACK,
        date(2025, 10, 1),
        18,
        24e6,
        "EUR",
    ),
    _DemoSpec(
        "de-rgb-hall",
        "Regensburg logistics hall",
        "Donau Logistik GmbH",
        "DE-BY",
        12.0,
        49.03,
        Fate.LATE,
        date(2025, 6, 1),
        16,
        31e6,
        "EUR",
        speed=0.6,
    ),
    _DemoSpec(
        "in-pnq-factory",
        "Chakan components factory",
        "Deccan Auto Parts Ltd",
        "IN-MH",
        73.86,
        18.75,
        Fate.STALLED,
        date(2025, 8, 1),
        20,
        2.1e9,
        "INR",
        event_day=date(2026, 6, 15),
    ),
    _DemoSpec(
        "ke-nbo-housing",
        "Ruiru affordable housing",
        "Thika Road Homes Ltd",
        "KE-22",
        36.96,
        -1.15,
        Fate.AHEAD,
        date(2026, 1, 15),
        16,
        1.4e9,
        "KES",
        speed=1.35,
    ),
    _DemoSpec(
        "br-cps-warehouse",
        "Campinas cold store",
        "Frio Paulista SA",
        "BR-SP",
        -47.13,
        -22.86,
        Fate.CANCELLED,
        date(2025, 11, 1),
        14,
        85e6,
        "BRL",
        event_day=date(2026, 2, 20),
    ),
    _DemoSpec(
        "au-bne-solar",
        "Lockyer Valley solar",
        "Lockyer Renewables Pty",
        "AU-QLD",
        152.28,
        -27.55,
        Fate.FINISHED,
        date(2024, 9, 1),
        20,
        42e6,
        "AUD",
        speed=1.05,
    ),
)


def _rect(lon: float, lat: float, dx_m: float, dy_m: float, w_m: float, h_m: float) -> Polygon:
    """Rectangle of w x h metres whose south-west corner is (dx, dy) metres from (lon, lat)."""
    mlon = 111_320.0 * math.cos(math.radians(lat))
    mlat = 110_540.0
    return box(lon + dx_m / mlon, lat + dy_m / mlat, lon + (dx_m + w_m) / mlon, lat + (dy_m + h_m) / mlat)


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    return date(d.year + y, m + 1, min(d.day, 28))


def _plan(spec: _DemoSpec) -> Plan:
    s, end = spec.start, _add_months(spec.start, spec.months)
    span = (end - s).days
    lon, lat = spec.lon, spec.lat
    pad = _rect(lon, lat, -250, -200, 500, 400)
    hall_a = _rect(lon, lat, -200, -150, 200, 300)
    hall_b = _rect(lon, lat, 30, -150, 180, 140)
    hall_c = _rect(lon, lat, 30, 20, 180, 130)

    def at(frac: float) -> date:
        return s + timedelta(days=round(span * frac))

    return Plan(
        (
            Phase("earthworks", 0.15, s, at(0.2), pad),
            Phase("hall A", 0.40, at(0.15), at(0.75), hall_a),
            Phase("hall B", 0.25, at(0.3), at(0.9), hall_b),
            Phase("hall C", 0.20, at(0.5), end, MultiPolygon([hall_c])),
        )
    )


def _loan(spec: _DemoSpec, plan: Plan) -> Loan:
    # Drawdowns follow the phases' weights at their planned starts; instalments quarterly
    # from six months after the start over five years (interest-only stretch modelled as zero).
    disb = tuple(ScheduledAmount(p.start, round(spec.amount * p.weight, 2)) for p in plan.phases)
    first = _add_months(plan.start, 6)
    n = 20
    reps = tuple(ScheduledAmount(_add_months(first, 3 * k), round(spec.amount / n, 2)) for k in range(n))
    repaid = sum(r.amount for r in reps if r.on <= DEMO_AS_OF)
    drawn = sum(d.amount for d in disb if d.on <= DEMO_AS_OF)
    return Loan(
        f"L-{spec.id}", spec.borrower, spec.amount, spec.currency, disb, reps, round(drawn - repaid, 2), "active"
    )


def demo_portfolio() -> Portfolio:
    """Build the six-site demo portfolio (deterministic)."""
    sites: list[Site] = []
    loans: list[Loan] = []
    for spec in _SPECS:
        plan = _plan(spec)
        props: dict[str, object] = {"fate": spec.fate.value, "country": spec.region[:2], "demo": True}
        if spec.event_day:
            props["fate_event_day"] = spec.event_day.isoformat()
        if spec.speed != 1.0:
            props["fate_speed"] = spec.speed
        boundary = _rect(spec.lon, spec.lat, -300, -250, 600, 500)
        sites.append(Site(spec.id, spec.name, f"L-{spec.id}", spec.region, boundary, plan, props))
        loans.append(_loan(spec, plan))
    return Portfolio(tuple(sites), tuple(loans))


def synthetic_portfolio(seed: int, n_sites: int, *, as_of: date = DEMO_AS_OF) -> Portfolio:
    """A random portfolio for benchmarks: places, sizes, plans, fates and paces drawn from ``seed``.

    Sites are spread over the land between 45 S and 60 N on a coarse lattice so they never
    overlap; each plan has an earthworks pad and one to three buildings; fates are drawn with
    the mix a construction book shows (mostly on track or late, some stalled, a few cancelled).
    """
    rng = np.random.default_rng(seed)
    fates = [Fate.ON_TRACK, Fate.LATE, Fate.STALLED, Fate.AHEAD, Fate.CANCELLED, Fate.FINISHED]
    probs = [0.3, 0.25, 0.15, 0.1, 0.08, 0.12]
    sites: list[Site] = []
    loans: list[Loan] = []
    cells = rng.permutation(36 * 21)[:n_sites] if n_sites <= 36 * 21 else np.arange(n_sites)
    for k in range(n_sites):
        cell = int(cells[k])
        lon = -175.0 + (cell % 36) * 10.0 + float(rng.uniform(1, 9))
        if lon > 180.0:
            # The lattice's last column runs past the antimeridian: wrap it (other sites keep
            # their exact coordinates, so portfolios of earlier seeds are unchanged), and keep the
            # centre 0.1 deg off 180 so a site (at most about 1 km across) never straddles it.
            lon = max(lon - 360.0, -179.9)
        lon = min(lon, 179.9)
        lat = -45.0 + (cell // 36 % 21) * 5.0 + float(rng.uniform(0.5, 4.5))
        fate = fates[int(rng.choice(len(fates), p=probs))]
        months = int(rng.integers(12, 24))
        if fate is Fate.FINISHED:
            start = as_of - timedelta(days=int(30 * months + rng.integers(60, 200)))
        else:
            start = as_of - timedelta(days=int(rng.integers(200, 30 * months)))
        w, h = float(rng.uniform(350, 800)), float(rng.uniform(300, 700))
        spec = _DemoSpec(f"syn-{seed}-{k:04d}", f"Synthetic site {k}", f"Borrower {k}", f"R{cell % 17:02d}",
                         lon, lat, fate, start, months, float(rng.uniform(5e6, 8e7)), "EUR")  # fmt: skip
        plan = _random_plan(rng, spec, w, h)
        props: dict[str, object] = {"fate": fate.value, "synthetic_seed": seed}
        if fate is Fate.LATE:
            props["fate_speed"] = round(float(rng.uniform(0.45, 0.8)), 2)
        elif fate is Fate.AHEAD:
            props["fate_speed"] = round(float(rng.uniform(1.15, 1.4)), 2)
        elif fate in (Fate.STALLED, Fate.CANCELLED):
            lo = plan.start + timedelta(days=60 if fate is Fate.CANCELLED else 120)
            hi = min(plan.end, as_of - timedelta(days=60))
            span = max((hi - lo).days, 1)
            props["fate_event_day"] = (lo + timedelta(days=int(rng.integers(0, span)))).isoformat()
        boundary = _rect(lon, lat, -w / 2 - 60, -h / 2 - 60, w + 120, h + 120)
        sites.append(Site(spec.id, spec.name, f"L-{spec.id}", spec.region, boundary, plan, props))
        loans.append(_loan(spec, plan))
    return Portfolio(tuple(sites), tuple(loans))


def _random_plan(rng: Any, spec: _DemoSpec, w: float, h: float) -> Plan:
    s, end = spec.start, _add_months(spec.start, spec.months)
    span = (end - s).days
    lon, lat = spec.lon, spec.lat
    pad = _rect(lon, lat, -w / 2, -h / 2, w, h)
    n_build = int(rng.integers(1, 4))
    weights = rng.dirichlet(np.ones(n_build) * 3) * 0.85
    phases = [Phase("earthworks", 0.15, s, s + timedelta(days=round(span * 0.2)), pad)]
    bw = (w - 40) / n_build
    for b in range(n_build):
        x0 = -w / 2 + 20 + b * bw
        fp = _rect(lon, lat, x0 + 5, -h / 2 + 20, bw - 10, h - 40)
        a = float(rng.uniform(0.1, 0.4))
        z = float(rng.uniform(max(a + 0.35, 0.7), 1.0))
        begin, finish = s + timedelta(days=round(span * a)), s + timedelta(days=round(span * z))
        phases.append(Phase(f"building {chr(65 + b)}", 0.0, begin, finish, fp))
    # Round the weights so they sum to exactly 1 (the importer checks it).
    ws = [0.15] + [round(float(x), 4) for x in weights]
    ws[-1] = round(1.0 - sum(ws[:-1]), 4)
    return Plan(tuple(Phase(p.name, ws[k], p.start, p.end, p.footprint_wgs84) for k, p in enumerate(phases)))
