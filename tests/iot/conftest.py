"""Fixtures for site feeds: a stored demo portfolio, raw readings, and MQTT brokers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aoi.demo import demo_portfolio
from store import repo

#: The shared broker on this machine (anonymous, persistence on); tests use a private topic root.
SHARED_BROKER = os.environ.get("SITEWATCH_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def reading(**overrides: Any) -> dict[str, Any]:
    """A valid raw reading for the demo site de-rgb-hall, with fields overridden."""
    base: dict[str, Any] = {
        "site_id": "de-rgb-hall",
        "sensor_id": "eq-crane-1",
        "kind": "equipment_runtime_h",
        "observed_at": "2026-11-01T10:00:00+01:00",
        "value": 42,
        "unit": "min",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def readings_burst(n: int, *, start: datetime, sensor_prefix: str = "s") -> list[tuple[str, str, dict[str, Any]]]:
    """``n`` distinct readings as (site_id, sensor_id, payload), spread over demo sites and 10 sensors."""
    sites = [s.id for s in demo_portfolio().sites]
    out = []
    for i in range(n):
        site, sensor = sites[i % len(sites)], f"{sensor_prefix}-{i % 10}"
        at = start + timedelta(seconds=i)
        payload = {"kind": "power_kwh", "observed_at": at.isoformat(), "value": float(i % 97), "unit": "kWh"}
        out.append((site, sensor, payload))
    return out


@pytest.fixture
def demo_engine(engine):
    """A migrated database (both backends) holding the demo portfolio."""
    repo.save_portfolio(engine, demo_portfolio())
    return engine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


class PrivateBroker:
    """A Mosquitto of our own on a free port, with persistence in a temp dir, that tests may restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        store = workdir / "mosquitto-data"
        store.mkdir()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {store}/\nautosave_interval 1\n"
            "max_queued_messages 0\nlog_dest none\n" + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("private mosquitto did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves sessions and queued messages to its persistence file."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed")
    broker = PrivateBroker(tmp_path)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def shared_broker() -> str:
    port = int(SHARED_BROKER.rsplit(":", 1)[1])
    if not _port_open(port):
        pytest.skip(f"no MQTT broker at {SHARED_BROKER}")
    return SHARED_BROKER


@pytest.fixture
def topic_root() -> str:
    """A private topic tree on a shared broker."""
    return f"swtest-{uuid.uuid4().hex[:10]}"
