"""Errors raised while reading and validating sites, plans and loans."""

from __future__ import annotations

from dataclasses import dataclass


class AoiError(Exception):
    """Root of all aoi errors."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One defect in one input feature or row."""

    index: int  #: position in the FeatureCollection or CSV (0-based); -1 for the document itself
    feature_id: str | None  #: the item's own id, when it has one
    field: str  #: dotted path, e.g. "plan.phases[1].end"
    reason: str

    def __str__(self) -> str:
        who = f"feature #{self.index}" if self.index >= 0 else "document"
        if self.feature_id:
            who += f" (id {self.feature_id})"
        return f"{who}: {self.field}: {self.reason}"


class PortfolioInvalidError(AoiError, ValueError):
    """The portfolio has problems; nothing was imported."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in portfolio:\n{listing}")


class SiteNotFoundError(AoiError, LookupError):
    """No site with that id (or not visible to the caller)."""

    def __init__(self, site_id: str) -> None:
        self.site_id = site_id
        super().__init__(f"site {site_id!r} not found")


class LoanNotFoundError(AoiError, LookupError):
    """No loan with that id."""

    def __init__(self, loan_id: str) -> None:
        self.loan_id = loan_id
        super().__init__(f"loan {loan_id!r} not found")
