"""Errors raised by the risk package: bad feeds, bad configuration, unknown versions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class RiskError(Exception):
    """Root of all risk errors."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One defect in one row of a CSV feed.

    Attributes:
        row: Line number in the file (the header is line 1), or 0 for the file as a whole.
        key: What the row is about when known (``loan_id`` or ``region``), else "".
        field: The column at fault ("" for the row as a whole).
        reason: What is wrong, in words an operator can act on.
        raw: The row as read, kept so a rejected row stays visible.
    """

    row: int
    key: str
    field: str
    reason: str
    raw: dict[str, str] | None = None

    def __str__(self) -> str:
        who = f"row {self.row}" + (f" ({self.key})" if self.key else "")
        return f"{who}: {self.field or '-'}: {self.reason}"


class FeedInvalidError(RiskError, ValueError):
    """A feed cannot be read at all (missing columns, empty file); nothing was imported."""

    def __init__(self, feed: str, problems: Sequence[RowProblem]) -> None:
        self.feed = feed
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{feed} feed refused, {len(self.problems)} problem(s):\n{listing}")


class ScorecardInvalidError(RiskError, ValueError):
    """A scorecard or alert configuration is malformed; every problem is listed."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{listing}")


class ConfigVersionNotFoundError(RiskError, LookupError):
    """No configuration file for the requested version (needed to recompute a stored score)."""
