"""A local outbox for the demo: a real SMTP server and a real webhook receiver on 127.0.0.1.

The demo has no mail relay or risk engine to talk to, yet officers should see that alerts
reach people. While the demo builds, this outbox listens on free loopback ports; notifications
go to it over real SMTP and HTTP (signed, retried, every attempt recorded as in production) and
land as files under ``<data dir>/outbox/`` (``mail/*.eml`` and ``webhooks/*.json``).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from jobs.notify import verify_webhook_signature

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outbox:
    """Where the local outbox listens and writes."""

    smtp_host: str
    smtp_port: int
    webhook_url: str
    webhook_secret: str
    folder: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _MailToFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        (self.folder / f"{self.count:05d}.eml").write_bytes(envelope.content)
        return "250 Message accepted for delivery"


def _webhook_handler(folder: Path, secret: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            ok = verify_webhook_signature(
                secret,
                self.headers.get("X-SiteWatch-Timestamp", ""),
                body,
                self.headers.get("X-SiteWatch-Signature", ""),
            )
            if not ok:
                self.send_response(401)
                self.end_headers()
                return
            delivery = self.headers.get("X-SiteWatch-Delivery", "unknown")
            (folder / f"{delivery}.json").write_text(json.dumps(json.loads(body), indent=1), encoding="utf-8")
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug(format, *args)

    return Handler


@contextmanager
def local_outbox(folder: Path, *, secret: str = "sitewatch-demo-secret") -> Iterator[Outbox]:
    """Run an SMTP server and a webhook receiver on loopback until the block ends."""
    mail_dir, hook_dir = folder / "mail", folder / "webhooks"
    mail_dir.mkdir(parents=True, exist_ok=True)
    hook_dir.mkdir(parents=True, exist_ok=True)
    controller = Controller(_MailToFiles(mail_dir), hostname="127.0.0.1", port=_free_port())
    controller.start()
    http = ThreadingHTTPServer(("127.0.0.1", 0), _webhook_handler(hook_dir, secret))
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield Outbox("127.0.0.1", controller.port, f"http://127.0.0.1:{http.server_address[1]}/hooks", secret, folder)
    finally:
        http.shutdown()
        http.server_close()
        controller.stop()
