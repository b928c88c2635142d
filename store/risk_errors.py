"""Errors of the risk tables (alerts and cases not found, or not in a state that allows a change)."""

from __future__ import annotations

from store.errors import StoreError


class AlertNotFoundError(StoreError, LookupError):
    """No alert with this id."""


class CaseNotFoundError(StoreError, LookupError):
    """No case (or case task) with this id."""


class RiskStateError(StoreError, ValueError):
    """The alert or case is not in a state that allows this change (e.g. acknowledging a resolved alert)."""
