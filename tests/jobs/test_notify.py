import email
import email.policy
import json

import pytest

from aoi.demo import DEMO_AS_OF, demo_portfolio
from jobs.demo import load_demo_risk_inputs
from jobs.notify import (
    LoanContacts,
    Notifier,
    SmtpTarget,
    WebhookTarget,
    post_webhook,
    send_email,
    verify_webhook_signature,
    webhook_signature,
)
from jobs.risk import score_portfolio
from risk.demo import demo_contacts
from store import repo, risk_repo
from tests.jobs.risk_helpers import SmtpServer, WebhookReceiver, demo_progress, free_port

pytestmark = pytest.mark.integration

SECRET = "s3cret"
LATE = "L-de-rgb-hall"


def test_signature_covers_timestamp_and_body():
    sig = webhook_signature(SECRET, "1700000000", b'{"a":1}')
    assert verify_webhook_signature(SECRET, "1700000000", b'{"a":1}', sig, now=1700000010)
    assert not verify_webhook_signature(SECRET, "1700000000", b'{"a":2}', sig, now=1700000010)
    assert not verify_webhook_signature(SECRET, "1700000001", b'{"a":1}', sig, now=1700000010)
    assert not verify_webhook_signature(SECRET, "1700000000", b'{"a":1}', sig, now=1700009999)  # replay


def test_webhook_retries_with_backoff_until_receiver_accepts(engine):
    waits: list[float] = []
    with WebhookReceiver(SECRET, fail_first=2) as receiver:
        target = WebhookTarget(receiver.url, SECRET, max_attempts=4, backoff_s=0.5)
        outcome = post_webhook(engine, target, kind="test.event", payload={"x": 1}, sleep=waits.append)
    assert outcome.ok
    assert outcome.attempts == 3
    assert waits == [0.5, 1.0]
    assert [r["valid"] for r in receiver.requests] == [True, True, True]
    assert len({r["delivery"] for r in receiver.requests}) == 1
    attempts = risk_repo.list_deliveries(engine, channel="webhook")
    assert [(d.data.attempt, d.data.ok, d.data.status_code) for d in attempts] == [
        (1, False, 503),
        (2, False, 503),
        (3, True, 200),
    ]


def test_webhook_gives_up_after_max_attempts_and_records_each(engine):
    url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    outcome = post_webhook(engine, WebhookTarget(url, SECRET, max_attempts=3, backoff_s=0.01), kind="t", payload={})
    assert not outcome.ok
    assert outcome.attempts == 3
    assert [d.data.ok for d in risk_repo.list_deliveries(engine)] == [False, False, False]


def test_email_is_sent_over_smtp_and_recorded(engine):
    with SmtpServer() as smtp:
        target = SmtpTarget("127.0.0.1", smtp.port, "sitewatch@bank.example")
        outcome = send_email(engine, target, to="officer@bank.example", subject="Hi", body="Body", kind="alert")
        assert outcome.ok
        assert smtp.messages[0][1] == ["officer@bank.example"]
    failed = send_email(
        engine,
        SmtpTarget("127.0.0.1", free_port(), "x@bank.example"),
        to="a@b.example",
        subject="s",
        body="b",
        kind="alert",
    )
    assert not failed.ok
    assert [d.data.ok for d in risk_repo.list_deliveries(engine, channel="email")] == [True, False]


def test_scoring_run_notifies_officer_borrower_and_webhook(engine):
    portfolio = demo_portfolio()
    repo.save_portfolio(engine, portfolio)
    load_demo_risk_inputs(engine, DEMO_AS_OF)
    contacts = {k: LoanContacts(*v) for k, v in demo_contacts(portfolio).items()}
    with SmtpServer() as smtp, WebhookReceiver(SECRET, fail_first=2) as receiver:
        notifier = Notifier(
            webhook=WebhookTarget(receiver.url, SECRET, backoff_s=0.01),
            smtp=SmtpTarget("127.0.0.1", smtp.port, "sitewatch@bank.example"),
            contacts=contacts,
            sleep=lambda s: None,
        )
        score_portfolio(engine, as_of=DEMO_AS_OF, progress=demo_progress(), notifier=notifier)
        inbox = list(smtp.messages)
    deliveries = [d.data for d in risk_repo.list_deliveries(engine)]
    hooks = [d for d in deliveries if d.channel == "webhook"]
    assert all(r["valid"] for r in receiver.requests)
    events = {json.loads(r["body"])["event"] for r in receiver.requests}
    assert {"alert.opened", "case.opened"} <= events
    assert hooks[0].attempt == 1
    assert not hooks[0].ok
    assert all(d.ok for d in deliveries if d.attempt == 3)
    emails = [d for d in deliveries if d.channel == "email"]
    assert len(emails) == len(inbox)
    assert all(d.ok for d in emails)
    officer, borrower = contacts[LATE].officer, contacts[LATE].borrower
    reminder = [d for d in emails if d.kind == "payment_reminder" and d.loan_id == LATE]
    assert [d.target for d in reminder] == [borrower]
    assert any(d.kind == "alert" and d.target == officer and d.loan_id == LATE for d in emails)
    raw = next(m[2] for m in inbox if m[1] == [borrower])
    body = email.message_from_bytes(raw, policy=email.policy.default).get_content()
    assert "Donau Logistik GmbH" in body
    assert "(61 days" in body
    # a second run sends nothing new: no alert opens twice
    before = len(risk_repo.list_deliveries(engine))
    score_portfolio(engine, as_of=DEMO_AS_OF, progress=demo_progress(), notifier=notifier)
    assert len(risk_repo.list_deliveries(engine)) == before
