from datetime import date
from pathlib import Path

import pytest

from aoi.demo import demo_portfolio
from risk.alerts import evaluate_rules
from risk.demo import demo_market_series, market_csv
from risk.errors import FeedInvalidError
from risk.feeds import parse_market, parse_payments
from risk.figures import FeaturePolicy, drawdown_figures, market_figures, repayment_figures
from risk.records import MarketObservation, Payment
from risk.scorecard import assess

DATA = Path(__file__).resolve().parents[2] / "risk" / "data"

GOOD_AND_BAD = """loan_id,due_date,amount_due,paid_date,amount_paid,restructured
L-1,2026-01-01,100,2026-01-02,100,no
L-1,2026-04-01,100,,,
L-1,2026-04-01,100,,,
L-2,2026-13-01,-5,2026-01-01,,maybe
L-9,2026-01-01,100,,,
"""


def test_payments_feed_names_row_field_reason_and_keeps_good_rows():
    result = parse_payments(GOOD_AND_BAD, known_loans={"L-1", "L-2"})
    assert [p.due_date for p in result.accepted] == [date(2026, 1, 1), date(2026, 4, 1)]
    problems = {(p.row, p.field) for p in result.rejected}
    assert (4, "due_date") in problems  # duplicate instalment
    assert {(5, "due_date"), (5, "amount_due"), (5, "amount_paid"), (5, "restructured")} <= problems
    assert (6, "loan_id") in problems
    assert all(p.raw for p in result.rejected)
    assert "row 6 (L-9): loan_id: unknown loan" in {str(p) for p in result.rejected}


def test_payments_feed_without_required_column_is_refused():
    with pytest.raises(FeedInvalidError) as err:
        parse_payments("loan_id,amount_due\nL-1,100\n")
    assert [p.field for p in err.value.problems] == ["due_date"]
    assert isinstance(err.value, ValueError)


def test_shipped_market_csv_is_what_its_script_generates():
    assert (DATA / "market_demo.csv").read_text() == market_csv(demo_market_series())
    assert parse_market((DATA / "market_demo.csv").read_text()).rejected == ()


def _p(due, paid_on=None, paid=0.0, amount=100.0, restructured=False):
    return Payment("L", due, amount, paid_on, paid, restructured)


def test_days_past_due_counts_from_oldest_material_arrear():
    pays = [_p(date(2026, 1, 1), date(2026, 1, 1), 100), _p(date(2026, 4, 1)), _p(date(2026, 7, 1))]
    rep = repayment_figures(pays, date(2026, 7, 11), outstanding=1000)
    assert rep.days_past_due == (date(2026, 7, 11) - date(2026, 4, 1)).days
    assert rep.amount_overdue == 200
    assert rep.paid_ratio_12m == pytest.approx(1 / 3)


def test_immaterial_shortfall_is_not_past_due_but_is_partial():
    pays = [_p(date(2026, 1, 1), date(2026, 1, 1), 99.5)]
    rep = repayment_figures(pays, date(2026, 3, 1), outstanding=1000)  # 0.5 < 1 % of 1000
    assert rep.days_past_due == 0
    assert rep.partial_payments_12m == 1


def test_payment_after_as_of_is_not_yet_known():
    pays = [_p(date(2026, 1, 1), date(2026, 2, 15), 100)]
    assert repayment_figures(pays, date(2026, 2, 1), outstanding=1000).days_past_due == 31
    later = repayment_figures(pays, date(2026, 3, 1), outstanding=1000)
    assert later.days_past_due == 0
    assert later.late_payments_12m == 1


def test_no_feed_means_missing_not_current():
    rep = repayment_figures([], date(2026, 3, 1), outstanding=1000)
    assert rep.days_past_due is None
    assert rep.paid_ratio_12m is None


def test_restructurings_are_counted():
    pays = [_p(date(2026, 1, 1), date(2026, 1, 1), 100, restructured=True), _p(date(2026, 4, 1), date(2026, 4, 1), 100)]
    assert repayment_figures(pays, date(2026, 5, 1), outstanding=1000).restructurings == 1


def test_money_ahead_of_progress_is_measured_against_earned_schedule():
    portfolio = demo_portfolio()
    site, loan = portfolio.sites[0], portfolio.loans[0]
    as_of = date(2026, 11, 1)
    on_plan = drawdown_figures(loan, site.plan, site.plan.planned_percent(as_of), as_of)
    assert on_plan.money_ahead_pp == pytest.approx(0.0)
    nothing_built = drawdown_figures(loan, site.plan, 0.0, as_of)
    assert nothing_built.money_ahead_pp == pytest.approx(nothing_built.disbursed_pct)
    assert nothing_built.disbursed_pct > 90
    assert drawdown_figures(loan, site.plan, None, as_of).money_ahead_pp is None


def test_market_signal_is_signed_and_stale_data_is_missing():
    obs = [
        MarketObservation("R", "construction_output", date(2025, 10, 1), 100.0),
        MarketObservation("R", "construction_output", date(2026, 10, 1), 90.0),
        MarketObservation("R", "construction_costs", date(2025, 10, 1), 100.0),
        MarketObservation("R", "construction_costs", date(2026, 10, 1), 110.0),
    ]
    policy = FeaturePolicy(market_indicators={"construction_output": 1, "construction_costs": -1})
    fig = market_figures(obs, "R", date(2026, 11, 1), policy=policy)
    assert fig.change_pct == pytest.approx(-10.0)
    assert market_figures(obs, "R", date(2027, 6, 1), policy=policy).change_pct is None
    assert market_figures(obs, "other", date(2026, 11, 1), policy=policy).change_pct is None


def test_rule_with_missing_input_is_unknown_not_clear(card, alert_config, demo_inputs):
    inputs = demo_inputs["on_track"]
    a = assess(card, [inputs])[0]
    states = {o.rule_id: o.state for o in evaluate_rules(alert_config, inputs, a, band_order=["A", "B", "C", "D", "E"])}
    assert states["site_silence"] == "unknown"
    assert states["repayment_overdue"] == "clear"
