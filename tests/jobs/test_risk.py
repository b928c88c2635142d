from dataclasses import replace

import pytest

from aoi.demo import DEMO_AS_OF, demo_portfolio
from jobs.demo import load_demo_risk_inputs
from jobs.risk import import_payments, latest_assessments, rescore, score_portfolio
from risk.errors import FeedInvalidError
from store import repo, risk_repo
from store.risk_errors import AlertNotFoundError, RiskStateError
from tests.jobs.risk_helpers import demo_activity, demo_progress

LATE = "L-de-rgb-hall"
ON_TRACK = "L-es-sev-solar"


@pytest.fixture
def demo_db(engine):
    repo.save_portfolio(engine, demo_portfolio(), actor="test")
    load_demo_risk_inputs(engine, DEMO_AS_OF)
    return engine


def _by_loan(outcomes):
    return {o.loan_id: o for o in outcomes}


def test_demo_scores_are_stored_and_recompute_identically(demo_db):
    outcomes = _by_loan(score_portfolio(demo_db, as_of=DEMO_AS_OF, progress=demo_progress(), activity=demo_activity()))
    assert all(o.status == "ok" for o in outcomes.values())
    assert outcomes[ON_TRACK].assessment.band in ("A", "B")
    assert outcomes[LATE].assessment.band in ("D", "E")
    for o in outcomes.values():
        assert rescore(demo_db, o.score_id) == o.assessment
    stored = {a.loan_id: a for _, a in latest_assessments(demo_db)}
    assert stored == {k: o.assessment for k, o in outcomes.items()}
    assert stored[LATE].config_version == "scorecard-v1"


def test_missing_progress_is_scored_as_missing_not_good(demo_db):
    outcomes = _by_loan(score_portfolio(demo_db, as_of=DEMO_AS_OF, progress={}))
    a = outcomes[ON_TRACK].assessment
    assert {"progress_deviation", "schedule_slip", "stall"} <= set(a.missing)
    assert a.confidence < 0.7


def test_same_condition_never_fires_twice_while_open(demo_db):
    first = _by_loan(score_portfolio(demo_db, as_of=DEMO_AS_OF, progress=demo_progress()))
    overdue = [a for a in risk_repo.list_alerts(demo_db, loan_id=LATE) if a.rule_id == "repayment_overdue"]
    assert len(overdue) == 1
    assert overdue[0].severity == "high"
    assert overdue[0].evidence["days_past_due"] > 30
    assert overdue[0].id in first[LATE].alerts_opened
    risk_repo.acknowledge_alert(demo_db, overdue[0].id, by="ana", note="called the borrower")
    second = _by_loan(score_portfolio(demo_db, as_of=DEMO_AS_OF, progress=demo_progress()))
    assert all(o.alerts_opened == () for o in second.values())
    again = [a for a in risk_repo.list_alerts(demo_db, loan_id=LATE) if a.rule_id == "repayment_overdue"]
    assert [a.status for a in again] == ["acknowledged"]
    assert again[0].acknowledged_by == "ana"
    assert again[0].acknowledge_note == "called the borrower"


def test_alert_resolves_when_rule_clears_and_can_fire_again(demo_db):
    score_portfolio(demo_db, as_of=DEMO_AS_OF, progress=demo_progress())
    # the late borrower pays everything: the repayment rule clears
    paid = [
        replace(p, paid_date=p.due_date, amount_paid=p.amount_due)
        for p in risk_repo.load_payments(demo_db, [LATE])[LATE]
    ]
    risk_repo.save_payments(demo_db, paid, source="test")
    outcome = _by_loan(score_portfolio(demo_db, as_of=DEMO_AS_OF, progress=demo_progress()))[LATE]
    overdue = [a for a in risk_repo.list_alerts(demo_db, loan_id=LATE) if a.rule_id == "repayment_overdue"]
    assert [(a.status, a.resolution) for a in overdue] == [("resolved", "rule_cleared")]
    assert overdue[0].id in outcome.alerts_resolved


def test_manual_resolve_and_state_errors(demo_db):
    score_portfolio(demo_db, as_of=DEMO_AS_OF, progress=demo_progress())
    alert = risk_repo.list_alerts(demo_db, status=["open"])[0]
    done = risk_repo.resolve_alert(demo_db, alert.id, by="ana", note="false alarm")
    assert (done.status, done.resolution, done.resolved_by) == ("resolved", "manual", "ana")
    with pytest.raises(RiskStateError):
        risk_repo.acknowledge_alert(demo_db, alert.id, by="ana", note="")
    with pytest.raises(AlertNotFoundError):
        risk_repo.resolve_alert(demo_db, 999_999, by="ana", note="")


def test_high_severity_alert_opens_one_case_with_department_tasks(demo_db):
    outcomes = _by_loan(score_portfolio(demo_db, as_of=DEMO_AS_OF, progress=demo_progress()))
    assert outcomes[LATE].case_id is not None
    assert outcomes[ON_TRACK].case_id is None
    cases = {c.loan_id: c for c in risk_repo.list_cases(demo_db)}
    case = cases[LATE]
    assert {t.department for t in case.tasks} == {"risk", "legal", "relationship_management"}
    assert all(t.owner and t.due_date > DEMO_AS_OF for t in case.tasks)
    assert case.alert_ids
    score_portfolio(demo_db, as_of=DEMO_AS_OF, progress=demo_progress())
    assert len([c for c in risk_repo.list_cases(demo_db) if c.loan_id == LATE]) == 1
    responded = risk_repo.record_response(demo_db, case.id, plan="payment_plan", note="3 months", by="rm")
    assert (responded.response_plan, responded.response_by) == ("payment_plan", "rm")
    task = risk_repo.complete_task(demo_db, case.tasks[0].id, by="risk-desk", note="rating reviewed")
    assert task.status == "done"
    trail = repo.audit_entries(demo_db, entity_id=str(case.id))
    assert {"open", "respond"} <= {e["action"] for e in trail}


def test_payment_import_stores_good_rows_and_keeps_rejected(demo_db):
    text = (
        "loan_id,due_date,amount_due,paid_date,amount_paid,restructured\n"
        f"{LATE},2026-09-01,1937500,2026-10-20,1937500,yes\n"
        "L-nope,2026-09-01,100,,,\n"
        f"{LATE},2026-09-0X,100,,,\n"
    )
    summary = import_payments(demo_db, text, source="feed.csv")
    assert (summary.created, summary.updated) == (0, 1)
    rejected = risk_repo.list_rejected(demo_db, feed="payments")
    assert {(r.row, r.field) for r in rejected} == {(3, "loan_id"), (4, "due_date")}
    assert rejected[0].raw["loan_id"] in ("L-nope", LATE)
    stored = {p.due_date.isoformat(): p for p in risk_repo.load_payments(demo_db, [LATE])[LATE]}
    assert stored["2026-09-01"].restructured is True
    with pytest.raises(FeedInvalidError):
        import_payments(demo_db, "loan_id\nL-1\n", source="broken.csv")


def test_the_portfolio_stage_loads_sites_and_loans_once(demo_db, monkeypatch):
    from jobs.notify import Notifier
    from jobs.pipeline import run_portfolio_stage

    calls = {"list_sites": 0, "list_loans": 0}
    for name in calls:
        real = getattr(repo, name)

        def counted(*a, _real=real, _name=name, **k):
            calls[_name] += 1
            return _real(*a, **k)

        monkeypatch.setattr(repo, name, counted)
    stage = run_portfolio_stage(demo_db, as_of=DEMO_AS_OF, batch_id="b" * 32, notifier=Notifier())
    assert stage.status == "ok", stage.reason
    assert stage.counts["loans_scored"] == len(demo_portfolio().loans)
    assert calls == {"list_sites": 1, "list_loans": 1}, "features, inputs and notifications share one load"


def test_market_figures_are_the_regions_for_every_loan(demo_db):
    from jobs.risk import gather_inputs
    from risk.figures import FeaturePolicy, market_figures
    from risk.records import MarketObservation

    policy = FeaturePolicy()
    inputs, failed = gather_inputs(demo_db, as_of=DEMO_AS_OF, progress=demo_progress(), activity=None, policy=policy)
    assert failed == []
    market = [MarketObservation(m.region, m.indicator, m.on, m.value) for m in risk_repo.load_market(demo_db)]
    assert any(i.market.change_pct is not None for i in inputs), "the demo series gives some regions a signal"
    for i in inputs:
        assert i.market == market_figures(market, i.region, DEMO_AS_OF, policy=policy)
