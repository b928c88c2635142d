"""Validation of the servicing (payments) and market CSV feeds (pure: text in, records out).

A feed with a wrong header is refused as a whole (:class:`FeedInvalidError`). Otherwise every
row is checked and each bad row is returned as a :class:`RowProblem` that names the row, the
field and the reason and keeps the raw row, so the caller can store it where an operator sees
it; the good rows are accepted.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Generic, TypeVar

from risk.errors import FeedInvalidError, RowProblem
from risk.records import MarketObservation, Payment

T = TypeVar("T")

PAYMENT_REQUIRED = ("loan_id", "due_date", "amount_due")
MARKET_COLUMNS = ("region", "indicator", "date", "value")

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"", "0", "false", "no", "n", "f"}


@dataclass(frozen=True, slots=True)
class FeedResult(Generic[T]):
    """Rows accepted and rows rejected (with reasons) from one feed."""

    accepted: tuple[T, ...]
    rejected: tuple[RowProblem, ...]


def _rows(text: str, feed: str, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise FeedInvalidError(feed, [RowProblem(0, "", "", "the file is empty (no header row)")])
    absent = [c for c in required if c not in header]
    if absent:
        raise FeedInvalidError(feed, [RowProblem(1, "", c, "required column missing") for c in absent])
    reader.fieldnames = header
    for row in reader:
        clean = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if not any(clean.values()):
            continue  # blank line
        yield reader.line_num, clean


def _date(raw: dict[str, str], name: str, problems: list[tuple[str, str]], *, required: bool) -> date | None:
    text = raw.get(name, "")
    if not text:
        if required:
            problems.append((name, "required, empty"))
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append((name, f"not an ISO date (YYYY-MM-DD): {text!r}"))
        return None


def _number(raw: dict[str, str], name: str, problems: list[tuple[str, str]], *, required: bool) -> float | None:
    text = raw.get(name, "").replace("_", "")
    if not text:
        if required:
            problems.append((name, "required, empty"))
        return None
    try:
        value = float(text)
    except ValueError:
        problems.append((name, f"not a number: {text!r}"))
        return None
    if not math.isfinite(value):
        problems.append((name, f"not a finite number: {text!r}"))
        return None
    return value


def parse_payments(
    text: str, *, known_loans: Collection[str] | None = None, today: date | None = None
) -> FeedResult[Payment]:
    """Validate a payments CSV.

    Columns: ``loan_id, due_date, amount_due`` (required), ``paid_date, amount_paid,
    restructured`` (optional; a blank ``paid_date`` means unpaid). Extra columns are ignored.

    Args:
        text: The CSV text (UTF-8, header on the first line).
        known_loans: When given, rows for other loans are rejected.
        today: When given, payments dated after it are rejected.

    Raises:
        FeedInvalidError: the header lacks a required column, or the file is empty.
    """
    accepted: list[Payment] = []
    rejected: list[RowProblem] = []
    seen: dict[tuple[str, date], int] = {}
    for line, raw in _rows(text, "payments", PAYMENT_REQUIRED):
        problems: list[tuple[str, str]] = []
        loan_id = raw.get("loan_id", "")
        if not loan_id:
            problems.append(("loan_id", "required, empty"))
        elif known_loans is not None and loan_id not in known_loans:
            problems.append(("loan_id", "unknown loan"))
        due = _date(raw, "due_date", problems, required=True)
        amount_due = _number(raw, "amount_due", problems, required=True)
        paid_on = _date(raw, "paid_date", problems, required=False)
        amount_paid = _number(raw, "amount_paid", problems, required=False)
        flag = raw.get("restructured", "").lower()
        if flag not in _TRUE | _FALSE:
            problems.append(("restructured", f"not a yes/no flag: {raw.get('restructured')!r}"))
        if amount_due is not None and amount_due <= 0:
            problems.append(("amount_due", f"must be > 0, got {amount_due:g}"))
        if amount_paid is not None and amount_paid < 0:
            problems.append(("amount_paid", f"must be >= 0, got {amount_paid:g}"))
        if paid_on is not None and not amount_paid:
            problems.append(("amount_paid", "a paid_date needs an amount_paid > 0"))
        if paid_on is None and amount_paid:
            problems.append(("paid_date", "an amount_paid needs a paid_date"))
        if paid_on is not None and today is not None and paid_on > today:
            problems.append(("paid_date", f"in the future ({paid_on.isoformat()} > {today.isoformat()})"))
        if due is not None and loan_id and (loan_id, due) in seen:
            problems.append(("due_date", f"duplicate instalment (first on row {seen[(loan_id, due)]})"))
        if problems or due is None or amount_due is None:  # a None here always came with a problem
            rejected.extend(RowProblem(line, loan_id, f, r, raw) for f, r in problems)
            continue
        seen[(loan_id, due)] = line
        accepted.append(Payment(loan_id, due, amount_due, paid_on, amount_paid or 0.0, flag in _TRUE))
    return FeedResult(tuple(accepted), tuple(rejected))


def parse_market(text: str) -> FeedResult[MarketObservation]:
    """Validate a market CSV: ``region, indicator, date, value`` (all required).

    Raises:
        FeedInvalidError: the header lacks a required column, or the file is empty.
    """
    accepted: list[MarketObservation] = []
    rejected: list[RowProblem] = []
    seen: dict[tuple[str, str, date], int] = {}
    for line, raw in _rows(text, "market", MARKET_COLUMNS):
        problems: list[tuple[str, str]] = []
        region, indicator = raw.get("region", ""), raw.get("indicator", "")
        if not region:
            problems.append(("region", "required, empty"))
        if not indicator:
            problems.append(("indicator", "required, empty"))
        on = _date(raw, "date", problems, required=True)
        value = _number(raw, "value", problems, required=True)
        if on is not None and (region, indicator, on) in seen:
            problems.append(("date", f"duplicate observation (first on row {seen[(region, indicator, on)]})"))
        if problems or on is None or value is None:  # a None here always came with a problem
            rejected.extend(RowProblem(line, region, f, r, raw) for f, r in problems)
            continue
        seen[(region, indicator, on)] = line
        accepted.append(MarketObservation(region, indicator, on, value))
    return FeedResult(tuple(accepted), tuple(rejected))
