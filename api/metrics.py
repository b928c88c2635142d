"""Request metrics in the Prometheus text format, and the edge middleware that records them.

Written by hand (no client library): counters and fixed-bucket histograms keyed by label
values, rendered in exposition format 0.0.4
(https://prometheus.io/docs/instrumenting/exposition_formats/). Labels use the route
*template* (``/v1/sites/{site_id}``), never the raw path, so the series stay bounded.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

#: Latency histogram upper bounds, seconds.
BUCKETS_S: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_HELP: Final = {
    "sitewatch_http_requests_total": ("counter", "HTTP requests by method, route template and status"),
    "sitewatch_http_request_duration_seconds": ("histogram", "HTTP request latency by method and route template"),
    "sitewatch_refresh_jobs_total": ("counter", "Site refresh jobs queued over HTTP (their outcomes are job records)"),
    "sitewatch_ingest_items_total": ("counter", "Items received on the ingest endpoints, by feed and outcome"),
}


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


class Metrics:
    """Thread-safe counters and histograms of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self._hist: dict[tuple[tuple[str, str], ...], list[float]] = {}

    def inc(self, name: str, labels: Mapping[str, str], by: float = 1.0) -> None:
        """Add to a counter."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + by

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and put its latency in the histogram."""
        self.inc("sitewatch_http_requests_total", {"method": method, "route": route, "status": str(status)})
        key = (("method", method), ("route", route))
        with self._lock:
            h = self._hist.get(key)
            if h is None:
                h = self._hist[key] = [0.0] * (len(BUCKETS_S) + 2)  # buckets, sum, count
            for i, bound in enumerate(BUCKETS_S):
                if seconds <= bound:
                    h[i] += 1
            h[-2] += seconds
            h[-1] += 1

    def value(self, name: str, labels: Mapping[str, str]) -> float:
        """A counter's current value (0 when never incremented)."""
        with self._lock:
            return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        """Every series in the Prometheus text exposition format."""
        lines: list[str] = []
        with self._lock:
            counters = {n: dict(s) for n, s in self._counters.items()}
            hist = {k: list(v) for k, v in self._hist.items()}
        for name, (kind, text) in _HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            if kind == "counter":
                for key, v in sorted(counters.get(name, {}).items()):
                    lines.append(f"{name}{_labels(key)} {v:g}")
                continue
            for key, h in sorted(hist.items()):
                for bound, n in zip(BUCKETS_S, h, strict=False):
                    lines.append(f"{name}_bucket{_labels((*key, ('le', f'{bound:g}')))} {n:g}")
                lines.append(f"{name}_bucket{_labels((*key, ('le', '+Inf')))} {h[-1]:g}")
                lines.append(f"{name}_sum{_labels(key)} {h[-2]:.6f}")
                lines.append(f"{name}_count{_labels(key)} {h[-1]:g}")
        return "\n".join(lines) + "\n"


class _BodyTooLargeError(HTTPException):
    """A body over the limit; an HTTPException so FastAPI's body parsing passes it through as 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


class EdgeMiddleware:
    """Pure ASGI middleware: refuses bodies over a size limit, times and counts every request, logs one line.

    Args:
        app: The wrapped application.
        metrics: Where request counts and latencies go.
        max_body_bytes: Larger bodies are answered 413 (declared or streamed).
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        started = False
        limit = self.max_body_bytes

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = int(message["status"]), True
            await send(message)

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLargeError(limit)
            return message

        try:
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise _BodyTooLargeError(limit)
            await self.app(scope, receive_wrapper, send_wrapper)
        except _BodyTooLargeError:
            if started:
                raise
            status = 413
            await _send_problem(send, 413, "Content too large", f"request body exceeds {limit} bytes", scope["path"])
        finally:
            seconds = time.perf_counter() - t0
            route = route_template(scope)
            self.metrics.observe_request(scope["method"], route, status, seconds)
            principal = scope.get("state", {}).get("principal")
            logger.info(
                "%s %s %s %.1f ms",
                scope["method"],
                route,
                status,
                seconds * 1000,
                extra={"route": route, "status": status, "key_id": getattr(principal, "key_id", None)},
            )


def route_template(scope: Scope) -> str:
    """The matched route as a template (``/v1/sites/{site_id}``), or "unmatched".

    Rebuilt from the path and the path parameters the router extracted, because routes of
    included routers only know their path relative to the router's prefix.
    """
    if scope.get("route") is None and scope.get("endpoint") is None:
        return "unmatched"
    params: dict[str, Any] = scope.get("path_params") or {}
    segments = str(scope.get("path", "")).split("/")
    for name, value in params.items():
        text = str(value)
        for i, seg in enumerate(segments):
            if seg == text:
                segments[i] = "{" + name + "}"
                break
            if seg.startswith(text + "."):
                segments[i] = "{" + name + "}" + seg[len(text) :]
                break
    return "/".join(segments)


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return str(v.decode("latin-1"))
    return None


async def _send_problem(send: Send, status: int, title: str, detail: str, instance: str) -> None:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    payload = json.dumps({**body, "instance": instance}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
