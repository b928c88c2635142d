"""Portfolio import and export: parse and validate (aoi), then save atomically (store)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from aoi.portfolio import ImportReport, ValidationRules, loans_to_csv, parse_loans_csv, parse_portfolio
from aoi.portfolio import portfolio_to_feature_collection as to_feature_collection
from store import repo
from store.repo import ImportSummary

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """An import that went through, with the repairs it applied."""

    summary: ImportSummary
    report: ImportReport


def import_portfolio(
    engine: Engine,
    collection: Any,
    *,
    loans_csv: str | None = None,
    repair: bool = False,
    source_crs: str | None = None,
    rules: ValidationRules | None = None,
    actor: str = "cli",
) -> ImportResult:
    """Validate a parsed FeatureCollection (and optional loans CSV text) and store it.

    Raises:
        PortfolioInvalidError: every problem found; the database is left unchanged.
    """
    loans = parse_loans_csv(loans_csv) if loans_csv is not None else []
    report = ImportReport()
    portfolio = parse_portfolio(
        collection,
        loans=loans,
        known_loan_ids=repo.known_loan_ids(engine),
        repair=repair,
        source_crs=source_crs,
        rules=rules,
        report=report,
    )
    summary = repo.save_portfolio(engine, portfolio, actor=actor)
    return ImportResult(summary, report)


def export_portfolio(engine: Engine) -> tuple[str, str]:
    """The stored portfolio as (GeoJSON text, loans CSV text), re-importable as is."""
    portfolio = repo.load_portfolio(engine)
    return json.dumps(to_feature_collection(portfolio.sites), indent=1), loans_to_csv(portfolio.loans)
