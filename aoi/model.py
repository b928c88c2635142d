"""Domain records: sites, their construction plans and the loans that finance them.

Every geometry here is in WGS84 (EPSG:4326, lon/lat axis order), as in RFC 7946.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeAlias

from shapely.geometry import MultiPolygon, Polygon

from aoi.errors import SiteNotFoundError

Footprint: TypeAlias = Polygon | MultiPolygon


@dataclass(frozen=True, slots=True)
class Phase:
    """One stage of the works with the ground it will cover.

    Attributes:
        name: Human name ("earthworks", "hall A").
        weight: Share of the whole project this phase stands for, in (0, 1].
        start: Planned first day of the phase.
        end: Planned last day of the phase (inclusive; ``end >= start``).
        footprint_wgs84: Where the phase builds, a Polygon or MultiPolygon.
    """

    name: str
    weight: float
    start: date
    end: date
    footprint_wgs84: Footprint

    def planned_fraction(self, on: date) -> float:
        """Planned share of this phase done by the end of ``on``, linear in time, in [0, 1]."""
        if on < self.start:
            return 0.0
        if on >= self.end:
            return 1.0
        return ((on - self.start).days + 1) / ((self.end - self.start).days + 1)


@dataclass(frozen=True, slots=True)
class Milestone:
    """An explicit point of the planned curve: ``percent`` complete by ``on``."""

    on: date
    percent: float


@dataclass(frozen=True, slots=True)
class Plan:
    """The construction plan of a site.

    The planned-progress curve comes from explicit milestones when there are any
    (linear between them, 0 before the first phase starts), otherwise from the phases
    (each linear over its own dates, weighted).
    """

    phases: tuple[Phase, ...]
    milestones: tuple[Milestone, ...] = ()

    @property
    def start(self) -> date:
        """First planned day of any phase."""
        return min(p.start for p in self.phases)

    @property
    def end(self) -> date:
        """Last planned day of any phase."""
        return max(p.end for p in self.phases)

    def planned_percent(self, on: date) -> float:
        """Planned percent complete (0-100) at the end of ``on``."""
        if self.milestones:
            return _interpolate_milestones(self.start, self.milestones, on)
        total = sum(p.weight for p in self.phases) or 1.0
        return 100.0 * sum(p.weight * p.planned_fraction(on) for p in self.phases) / total

    def date_for_percent(self, percent: float) -> date | None:
        """Earliest day on which the plan expects ``percent`` complete (earned schedule).

        Returns None when the plan never reaches it (for instance above 100).
        """
        lo, hi = self.start.toordinal() - 1, self.end.toordinal()
        if self.planned_percent(date.fromordinal(hi)) < percent - 1e-9:
            return None
        while hi - lo > 1:  # planned_percent is monotone, so bisect on days
            mid = (lo + hi) // 2
            if self.planned_percent(date.fromordinal(mid)) >= percent - 1e-9:
                hi = mid
            else:
                lo = mid
        return date.fromordinal(hi)


def _interpolate_milestones(start: date, milestones: Sequence[Milestone], on: date) -> float:
    points = [(start.toordinal() - 1, 0.0)] + [(m.on.toordinal(), m.percent) for m in milestones]
    x = on.toordinal()
    if x <= points[0][0]:
        return 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


@dataclass(frozen=True, slots=True)
class Site:
    """A financed construction site.

    Attributes:
        id: Stable identifier chosen by the lender.
        name: Display name.
        loan_id: The loan that finances it.
        region: Region code used for market signals and filtering (e.g. "DE-BY").
        boundary_wgs84: The site boundary.
        plan: The construction plan.
        properties: Any extra feature properties, kept as given.
    """

    id: str
    name: str
    loan_id: str
    region: str
    boundary_wgs84: Footprint
    plan: Plan
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScheduledAmount:
    """An amount due (or to be disbursed) on a date, in the loan's currency."""

    on: date
    amount: float


@dataclass(frozen=True, slots=True)
class Loan:
    """A construction loan.

    Attributes:
        id: Loan identifier in the bank's servicing system.
        borrower: Borrower's name.
        amount: Committed amount, in ``currency``.
        currency: ISO 4217 code.
        disbursements: Planned drawdowns.
        repayments: Planned instalments.
        outstanding: Principal outstanding today.
        status: "active", "closed", "default" or "restructured".
    """

    id: str
    borrower: str
    amount: float
    currency: str
    disbursements: tuple[ScheduledAmount, ...] = ()
    repayments: tuple[ScheduledAmount, ...] = ()
    outstanding: float = 0.0
    status: str = "active"


LOAN_STATUSES = ("active", "closed", "default", "restructured")


@dataclass(frozen=True, slots=True)
class Portfolio:
    """Sites and the loans that finance them."""

    sites: tuple[Site, ...]
    loans: tuple[Loan, ...] = ()

    def site(self, site_id: str) -> Site:
        """The site with this id."""
        for s in self.sites:
            if s.id == site_id:
                return s
        raise SiteNotFoundError(site_id)


_GROUNDWORK_WORDS = re.compile(r"earth|clear|grad|site ?prep|ground|excavat|levell", re.IGNORECASE)


def is_groundwork(plan: Plan, index: int) -> bool:
    """Whether a phase only clears and levels ground (no structure).

    A phase is groundwork when its name says so (earthworks, clearing, grading, site
    preparation, excavation, levelling) or when its footprint covers another phase's
    footprint (the pad that later carries the buildings). Progress on such a phase shows
    as vegetation loss, not as new structures.
    """
    phase = plan.phases[index]
    if _GROUNDWORK_WORDS.search(phase.name):
        return True
    fp = phase.footprint_wgs84
    return any(
        k != index and fp.covers(other.footprint_wgs84.representative_point()) and fp.area > other.footprint_wgs84.area
        for k, other in enumerate(plan.phases)
    )


def builds_on_pad(plan: Plan, index: int) -> bool:
    """Whether a building phase stands on ground a groundwork phase of the same plan clears."""
    if is_groundwork(plan, index):
        return False
    fp = plan.phases[index].footprint_wgs84
    pads = [p.footprint_wgs84 for k, p in enumerate(plan.phases) if k != index and is_groundwork(plan, k)]
    return any(pad.intersection(fp).area >= 0.5 * fp.area for pad in pads)
