"""Notification I/O: signed webhooks with retries, and e-mail over SMTP. Every attempt is recorded.

Webhook signing (``X-SiteWatch-Signature``)::

    signature = "sha256=" + hex(HMAC-SHA256(secret, f"{timestamp}.".encode() + body))

where ``timestamp`` is the ``X-SiteWatch-Timestamp`` header (Unix seconds) and ``body`` the raw
request body. Signing the timestamp with the body (as Stripe and Slack do) lets a receiver
refuse replays: it recomputes the HMAC and rejects a timestamp older than a few minutes. Each
attempt is signed afresh; ``X-SiteWatch-Delivery`` stays the same across retries so the
receiver can drop duplicates. Failed attempts (connection error, timeout, 408, 429, 5xx) are
retried with exponential backoff; other 4xx are final.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import Engine

from jobs.settings import Settings
from store import risk_repo

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-SiteWatch-Signature"
TIMESTAMP_HEADER = "X-SiteWatch-Timestamp"
EVENT_HEADER = "X-SiteWatch-Event"
DELIVERY_HEADER = "X-SiteWatch-Delivery"

#: HTTP statuses worth retrying; any other 4xx means the request itself is wrong.
RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where and how to post webhook events.

    Attributes:
        url: Receiver URL.
        secret: Shared HMAC secret.
        max_attempts: Attempts in all (first try included).
        backoff_s: Wait before the second attempt; each later wait is ``backoff_factor`` times longer.
        backoff_factor: Growth of the wait.
        max_backoff_s: Cap on one wait.
        timeout_s: Per-request timeout.
    """

    url: str
    secret: str
    max_attempts: int = 4
    backoff_s: float = 0.5
    backoff_factor: float = 2.0
    max_backoff_s: float = 30.0
    timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """The SMTP relay e-mails go through."""

    host: str
    port: int
    sender: str
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class LoanContacts:
    """Who hears about a loan: the officer in charge and the borrower's billing address."""

    officer: str | None = None
    borrower: str | None = None


@dataclass(frozen=True, slots=True)
class Notifier:
    """Notification channels for alerts and cases (any may be absent).

    Attributes:
        webhook: Webhook receiver, or None.
        smtp: SMTP relay, or None (no e-mail).
        contacts: Per loan id, its officer and borrower addresses.
        default_officer: Officer for loans without one.
        sleep: How to wait between retries (tests pass a fake).
    """

    webhook: WebhookTarget | None = None
    smtp: SmtpTarget | None = None
    contacts: Mapping[str, LoanContacts] = field(default_factory=dict)
    default_officer: str | None = None
    sleep: Callable[[float], None] = time.sleep

    def officer_for(self, loan_id: str) -> str | None:
        """The officer in charge of a loan."""
        c = self.contacts.get(loan_id)
        return (c.officer if c else None) or self.default_officer

    def borrower_for(self, loan_id: str) -> str | None:
        """The borrower's address for payment reminders."""
        c = self.contacts.get(loan_id)
        return c.borrower if c else None


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one notification ended."""

    message_id: str
    ok: bool
    attempts: int
    error: str = ""


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-SiteWatch-Signature`` value for a body sent at ``timestamp`` (Unix seconds, text)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_webhook_signature(
    secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None, tolerance_s: float = 300.0
) -> bool:
    """Whether a received webhook is authentic and fresh (for receivers and tests)."""
    try:
        age = abs((time.time() if now is None else now) - float(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(webhook_signature(secret, timestamp, body), signature)


def backoff_delays(target: WebhookTarget) -> list[float]:
    """Waits between consecutive attempts, in seconds (``max_attempts - 1`` of them)."""
    return [
        min(target.backoff_s * target.backoff_factor**k, target.max_backoff_s) for k in range(target.max_attempts - 1)
    ]


def post_webhook(
    engine: Engine,
    target: WebhookTarget,
    *,
    kind: str,
    payload: Mapping[str, Any],
    loan_id: str | None = None,
    alert_id: int | None = None,
    case_id: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryOutcome:
    """POST a signed JSON event, retrying with exponential backoff; record every attempt.

    Never raises for a delivery failure: the outcome (and the recorded attempts) say what happened.
    """
    message_id = uuid.uuid4().hex
    body = json.dumps({"event": kind, "delivery_id": message_id, **payload}, sort_keys=True, default=str).encode()
    delays = backoff_delays(target)
    error = ""
    with httpx.Client(timeout=target.timeout_s) as client:
        for attempt in range(1, target.max_attempts + 1):
            ts = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: webhook_signature(target.secret, ts, body),
                TIMESTAMP_HEADER: ts,
                EVENT_HEADER: kind,
                DELIVERY_HEADER: message_id,
            }
            started = time.perf_counter()
            status: int | None = None
            try:
                response = client.post(target.url, content=body, headers=headers)
                status = response.status_code
                ok = 200 <= status < 300
                error = "" if ok else f"HTTP {status}"
                retry = not ok and (status >= 500 or status in RETRY_STATUSES)
            except httpx.HTTPError as exc:
                ok, retry, error = False, True, f"{type(exc).__name__}: {exc}"
            risk_repo.record_delivery(
                engine,
                risk_repo.DeliveryAttempt(
                    message_id=message_id,
                    channel="webhook",
                    kind=kind,
                    target=target.url,
                    attempt=attempt,
                    ok=ok,
                    status_code=status,
                    error=error,
                    loan_id=loan_id,
                    alert_id=alert_id,
                    case_id=case_id,
                    duration_ms=(time.perf_counter() - started) * 1000.0,
                ),
            )
            if ok:
                logger.info("webhook %s delivered on attempt %s", kind, attempt, extra={"loan_id": loan_id})
                return DeliveryOutcome(message_id, True, attempt)
            if not retry or attempt == target.max_attempts:
                break
            logger.warning("webhook %s attempt %s failed (%s), retrying", kind, attempt, error)
            sleep(delays[attempt - 1])
    logger.error("webhook %s not delivered after %s attempt(s): %s", kind, attempt, error, extra={"loan_id": loan_id})
    return DeliveryOutcome(message_id, False, attempt, error)


def send_email(
    engine: Engine,
    smtp: SmtpTarget,
    *,
    to: str,
    subject: str,
    body: str,
    kind: str,
    loan_id: str | None = None,
    alert_id: int | None = None,
    case_id: int | None = None,
) -> DeliveryOutcome:
    """Send one plain-text e-mail and record it (sent or failed). Never raises for a send failure."""
    message_id = uuid.uuid4().hex
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = smtp.sender, to, subject
    msg["Message-ID"] = f"<{message_id}@sitewatch>"
    msg.set_content(body)
    started = time.perf_counter()
    error = ""
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as conn:
            if smtp.starttls:
                conn.starttls()
            if smtp.username:
                conn.login(smtp.username, smtp.password or "")
            conn.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    risk_repo.record_delivery(
        engine,
        risk_repo.DeliveryAttempt(
            message_id=message_id,
            channel="email",
            kind=kind,
            target=to,
            attempt=1,
            ok=not error,
            error=error,
            subject=subject,
            loan_id=loan_id,
            alert_id=alert_id,
            case_id=case_id,
            duration_ms=(time.perf_counter() - started) * 1000.0,
        ),
    )
    if error:
        logger.error("e-mail %s to %s failed: %s", kind, to, error, extra={"loan_id": loan_id})
    else:
        logger.info("e-mail %s sent to %s", kind, to, extra={"loan_id": loan_id})
    return DeliveryOutcome(message_id, not error, 1, error)


def notifier_from_settings(settings: Settings, contacts: dict[str, LoanContacts] | None = None) -> Notifier:
    """The configured notification channels (a channel without settings is left out)."""
    webhook = WebhookTarget(settings.webhook_url, settings.webhook_secret or "") if settings.webhook_url else None
    smtp = SmtpTarget(settings.smtp_host, settings.smtp_port, settings.smtp_sender) if settings.smtp_host else None
    return Notifier(webhook=webhook, smtp=smtp, contacts=contacts or {}, default_officer=settings.officer_email)
