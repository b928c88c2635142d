"""Real local receivers for notification tests: an HTTP webhook receiver and an SMTP server."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from aoi.demo import DEMO_AS_OF, demo_portfolio
from risk.demo import synthetic_activity, synthetic_progress


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebhookReceiver:
    """Accepts signed POSTs; answers 503 to the first ``fail_first`` requests."""

    def __init__(self, secret: str, *, fail_first: int = 0) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.requests: list[dict] = []  # every request with its verification result
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ts = self.headers["X-SiteWatch-Timestamp"]
                expected = (
                    "sha256="
                    + hmac.new(receiver.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
                )
                valid = hmac.compare_digest(expected, self.headers["X-SiteWatch-Signature"])
                fresh = abs(time.time() - int(ts)) < 300
                receiver.requests.append(
                    {"body": body, "valid": valid and fresh, "delivery": self.headers["X-SiteWatch-Delivery"]}
                )
                failing = len(receiver.requests) <= receiver.fail_first
                status = 401 if not valid else 503 if failing else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


class SmtpServer:
    """A real SMTP server on 127.0.0.1 collecting every message."""

    def __init__(self) -> None:
        self.inbox = _Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[tuple[str, list[str], bytes]]:
        return self.inbox.messages

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def demo_progress() -> dict:
    return {s.id: synthetic_progress(s, DEMO_AS_OF) for s in demo_portfolio().sites}


def demo_activity() -> dict:
    return {s.id: synthetic_activity(s) for s in demo_portfolio().sites}
