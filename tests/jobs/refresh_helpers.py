"""Helpers for the refresh-job tests: a stored book over the shared simulated archive."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from aoi.demo import demo_portfolio
from aoi.model import Portfolio, Site
from jobs.pipeline import RefreshSpec
from store import repo
from store.schema import ProgressObservationRow, ProgressSummaryRow, SceneRow

#: Early in the archive: half its scenes, so each refresh in these tests stays around a second.
TEST_AS_OF = date(2026, 1, 15)


def clone_book(sites: list[Site], copies: int) -> Portfolio:
    """``copies`` clones of each site (same place, plan and imagery; ids ``<id>-c<k>``), each with its own loan."""
    loans = {loan.id: loan for loan in demo_portfolio().loans}
    out_sites, out_loans = [], []
    for site in sites:
        for k in range(copies):
            loan = replace(loans[site.loan_id], id=f"{site.loan_id}-c{k}")
            out_sites.append(replace(site, id=f"{site.id}-c{k}", loan_id=loan.id))
            out_loans.append(loan)
    return Portfolio(tuple(out_sites), tuple(out_loans))


def store_book(engine: Engine, extra: Portfolio | None = None) -> None:
    """The demo book (loans and every site), plus ``extra`` sites and loans."""
    demo = demo_portfolio()
    if extra is not None:
        demo = Portfolio(demo.sites + extra.sites, demo.loans + extra.loans)
    repo.save_portfolio(engine, demo)


def spec_for(db_url: str, archive: Path, cache: Path, **kw: object) -> RefreshSpec:
    base = RefreshSpec(
        database_url=db_url,
        as_of=TEST_AS_OF,
        provider="local",
        archive_dir=str(archive),
        cache_dir=str(cache),
        checkpoint=None,
        retries=0,
    )
    return replace(base, **kw)


def row_counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {
            "summaries": session.scalar(select(func.count()).select_from(ProgressSummaryRow)) or 0,
            "observations": session.scalar(select(func.count()).select_from(ProgressObservationRow)) or 0,
            "scenes": session.scalar(select(func.count()).select_from(SceneRow)) or 0,
        }
