"""Watch-list cases opened in one batch: the same outcome as one loan at a time, on both backends."""

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest

from aoi.demo import demo_portfolio
from store import repo, risk_repo

TASKS = [
    ("risk", "Review rating", "risk-desk", date(2026, 12, 1)),
    ("legal", "Check covenants", "legal", date(2026, 12, 8)),
]


@dataclass(frozen=True)
class Outcome:
    rule_id: str
    loan_id: str
    state: str = "fired"
    severity: str = "high"
    title: str = "repayment overdue"
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        return f"{self.rule_id}:{self.loan_id}"


def _alerts(engine, loans: list[str], rule: str) -> dict[str, int]:
    changes = risk_repo.apply_rule_outcomes(
        engine, [Outcome(rule, ln) for ln in loans], site_ids={}, score_ids={}, config_version="alerts-test"
    )
    return {a.loan_id: a.id for a in changes.opened}


def test_open_cases_creates_new_ones_and_adds_alerts_to_an_existing_one(engine):
    portfolio = demo_portfolio()
    repo.save_portfolio(engine, portfolio)
    loans = sorted(ln.id for ln in portfolio.loans)[:4]
    first = _alerts(engine, loans[:1], "overdue")
    existing, created = risk_repo.open_case(
        engine, loans[0], severity="high", reason="first", tasks=TASKS, alert_ids=[first[loans[0]]]
    )
    assert created

    second = _alerts(engine, loans, "stall")
    requests = [risk_repo.CaseRequest(ln, "high", f"stall of {ln}", TASKS, [second[ln]]) for ln in loans]
    cases = risk_repo.open_cases(engine, requests, by="tester")

    assert set(cases) == set(loans)
    again, was_created = cases[loans[0]]
    assert not was_created
    assert again.id == existing.id
    assert again.alert_ids == (first[loans[0]], second[loans[0]])
    assert len(again.tasks) == 2  # no second set of tasks for an existing case
    for ln in loans[1:]:
        case, made = cases[ln]
        assert made
        assert case.opened_by == "tester"
        assert case.reason == f"stall of {ln}"
        assert case.alert_ids == (second[ln],)
        assert [(t.department, t.title, t.owner, t.due_date) for t in case.tasks] == TASKS
    # what was written reads back the same, and each new case is audited once
    assert {c.loan_id: c for c in risk_repo.list_cases(engine)} == {ln: cases[ln][0] for ln in loans}
    opened = [e for e in repo.audit_entries(engine) if e["entity"] == "case" and e["action"] == "open"]
    assert sorted(e["entity_id"] for e in opened) == sorted(str(cases[ln][0].id) for ln in loans)


def test_open_cases_refuses_a_loan_twice_and_writes_nothing(engine):
    portfolio = demo_portfolio()
    repo.save_portfolio(engine, portfolio)
    loan = portfolio.loans[0].id
    request = risk_repo.CaseRequest(loan, "high", "twice", TASKS, [])
    with pytest.raises(ValueError, match=loan):
        risk_repo.open_cases(engine, [request, request])
    assert risk_repo.list_cases(engine) == []


def test_case_notes_go_on_open_cases_only_and_read_back_oldest_first(engine):
    from store.risk_errors import CaseNotFoundError, RiskStateError

    portfolio = demo_portfolio()
    repo.save_portfolio(engine, portfolio)
    loan = sorted(ln.id for ln in portfolio.loans)[0]
    case, _ = risk_repo.open_case(engine, loan, severity="high", reason="r", tasks=TASKS, alert_ids=[])
    first = risk_repo.add_case_note(engine, case.id, note="called the borrower", by="officer-1")
    risk_repo.add_case_note(engine, case.id, note="site visit booked", by="officer-2")
    notes = risk_repo.case_notes(engine, case.id)
    assert [(n.by, n.note) for n in notes] == [("officer-1", "called the borrower"), ("officer-2", "site visit booked")]
    assert notes[0].at_utc == first.at_utc
    assert risk_repo.get_case(engine, case.id).loan_id == loan
    risk_repo.close_case(engine, case.id, by="officer-1", note="cured")
    with pytest.raises(RiskStateError):
        risk_repo.add_case_note(engine, case.id, note="late", by="officer-1")
    assert len(risk_repo.case_notes(engine, case.id)) == 2  # the refused note left nothing behind
    with pytest.raises(CaseNotFoundError):
        risk_repo.add_case_note(engine, 10**6, note="x", by="officer-1")
    with pytest.raises(CaseNotFoundError):
        risk_repo.get_case(engine, 10**6)
