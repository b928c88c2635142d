"""Fixtures for the pure risk tests: the shipped configuration and demo inputs."""

from pathlib import Path

import pytest

from aoi.demo import DEMO_AS_OF, demo_portfolio
from risk.config import read_alert_config, read_scorecard
from risk.demo import demo_market_series, demo_payments, synthetic_activity, synthetic_progress
from risk.figures import FeaturePolicy, risk_inputs

DATA = Path(__file__).resolve().parents[2] / "risk" / "data"


@pytest.fixture(scope="session")
def card():
    return read_scorecard("scorecard-v1")


@pytest.fixture(scope="session")
def alert_config():
    return read_alert_config("alerts-v1")


def _demo_inputs(card, *, with_activity):
    portfolio = demo_portfolio()
    loans = {ln.id: ln for ln in portfolio.loans}
    payments = demo_payments(portfolio)
    market = demo_market_series()
    policy = FeaturePolicy.from_config(card.features)
    return {
        site.properties["fate"]: risk_inputs(
            site,
            loans[site.loan_id],
            DEMO_AS_OF,
            progress=synthetic_progress(site),
            activity=synthetic_activity(site) if with_activity else None,
            payments=[p for p in payments if p.loan_id == site.loan_id],
            market=market,
            policy=policy,
        )
        for site in portfolio.sites
    }


@pytest.fixture(scope="session")
def demo_inputs(card):
    """RiskInputs per fate, without sensor activity."""
    return _demo_inputs(card, with_activity=False)


@pytest.fixture(scope="session")
def demo_inputs_with_activity(card):
    """RiskInputs per fate, with synthetic sensor activity."""
    return _demo_inputs(card, with_activity=True)
