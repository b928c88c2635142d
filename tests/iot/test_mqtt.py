"""The listener against real Mosquitto brokers: restarts of the listener and of the broker lose nothing."""

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from iot.mqtt import BrokerAddress, MqttPublisher, MqttSubscriber
from iot.readings import subscription_for, topic_for
from jobs.iot import MessageWriter, run_listener
from store import readings as rs
from tests.iot.conftest import readings_burst

pytestmark = pytest.mark.integration

START = datetime(2026, 10, 1, tzinfo=UTC)


class Listener:
    """run_listener in a thread, started and stopped by the test."""

    def __init__(self, engine, url, *, client_id, root="sitewatch", **kwargs):
        self.args = (engine, url)
        self.kwargs = {"client_id": client_id, "root": root, **kwargs}
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.result = run_listener(*self.args, stop=self.stop, ready=self.ready, linger_s=0.02, **self.kwargs)

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(15), "listener did not subscribe"
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(15)


def _publish(url, burst, root="sitewatch"):
    with MqttPublisher(BrokerAddress.parse(url), client_id=f"pub-{uuid.uuid4().hex[:8]}") as pub:
        for site, sensor, payload in burst:
            pub.publish(topic_for(site, sensor, root=root), json.dumps(payload))
        pub.flush(30)


def _wait_for(engine, n, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rs.count_readings(engine) >= n:
            return
        time.sleep(0.05)


def _assert_exactly(engine, burst):
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM readings")).scalar_one()
        distinct = conn.execute(
            text("SELECT count(*) FROM (SELECT DISTINCT site_id, sensor_id, observed_at FROM readings) AS d")
        ).scalar_one()
    assert (total, distinct) == (len(burst), len(burst))
    assert rs.count_rejected(engine) == 0


def test_listener_restart_and_crash_before_ack_lose_and_double_nothing(demo_engine, shared_broker, topic_root):
    burst = readings_burst(900, start=START)
    a, b, c = burst[:300], burst[300:600], burst[600:]
    client_id = f"swtest-{uuid.uuid4().hex[:8]}"
    with Listener(demo_engine, shared_broker, client_id=client_id, root=topic_root):
        _publish(shared_broker, a, topic_root)
        _wait_for(demo_engine, 300)
    _publish(shared_broker, b, topic_root)  # the listener is away: the broker keeps them
    assert rs.count_readings(demo_engine) == 300

    # Crash after commit, before acknowledging: the broker must deliver the batch again.
    writer = MessageWriter(demo_engine, root=topic_root)
    stop = threading.Event()

    def commit_then_crash(batch):
        writer(batch)
        stop.set()
        raise RuntimeError("crash between commit and ack")

    sub = MqttSubscriber(
        BrokerAddress.parse(shared_broker), subscription_for(topic_root), commit_then_crash, client_id=client_id
    )
    sub.run(stop)
    assert writer.summary.accepted > 0
    assert sub.stats.acknowledged == 0

    with Listener(demo_engine, shared_broker, client_id=client_id, root=topic_root) as again:
        _publish(shared_broker, c, topic_root)
        _wait_for(demo_engine, 900)
    _stats, summary = again.result
    assert summary.duplicate >= writer.summary.accepted  # the crashed batch came back and was absorbed
    _assert_exactly(demo_engine, burst)


def test_broker_restarts_lose_and_double_nothing(demo_engine, private_broker):
    url = private_broker.url
    burst = readings_burst(600, start=START, sensor_prefix="b")
    a, b, c = burst[:200], burst[200:400], burst[400:]
    client_id = f"swtest-{uuid.uuid4().hex[:8]}"
    with Listener(demo_engine, url, client_id=client_id):
        _publish(url, a)
        _wait_for(demo_engine, 200)
    _publish(url, b)  # queued for the absent listener ...
    private_broker.restart()  # ... and kept across a broker restart (persistence)
    with Listener(demo_engine, url, client_id=client_id) as listener:
        _wait_for(demo_engine, 400)
        assert rs.count_readings(demo_engine) == 400
        private_broker.restart()  # while the listener is connected: it reconnects with backoff
        _publish(url, c)
        _wait_for(demo_engine, 600)
    stats, _summary = listener.result
    assert stats.connections >= 2
    _assert_exactly(demo_engine, burst)


def test_clean_restart_during_a_burst_redelivers_nothing_already_stored(demo_engine, private_broker):
    # The publisher keeps going while the listener stops, so the broker is still sending when
    # the listener closes its socket: the last batch's acknowledgements must reach it anyway.
    url = private_broker.url
    burst = readings_burst(3000, start=START, sensor_prefix="r")
    client_id = f"swtest-{uuid.uuid4().hex[:8]}"
    publisher = threading.Thread(target=_publish, args=(url, burst))
    with Listener(demo_engine, url, client_id=client_id, batch_size=100) as first:
        publisher.start()
        _wait_for(demo_engine, 1000)
    with Listener(demo_engine, url, client_id=client_id, batch_size=100) as second:
        publisher.join(30)
        _wait_for(demo_engine, 3000)
    _stats, summary = second.result
    assert first.result[1].accepted >= 1000
    assert summary.duplicate == 0
    assert first.result[1].accepted + summary.accepted == 3000
    _assert_exactly(demo_engine, burst)


def test_crash_redelivers_at_most_the_receive_window_of_two_batches(demo_engine, private_broker):
    url = private_broker.url
    burst = readings_burst(2000, start=START, sensor_prefix="k")
    client_id = f"swtest-{uuid.uuid4().hex[:8]}"
    with Listener(demo_engine, url, client_id=client_id, batch_size=50):
        pass  # creates the persistent session
    _publish(url, burst)  # queued for the absent listener

    writer = MessageWriter(demo_engine)
    stop = threading.Event()

    def commit_then_crash(batch):
        writer(batch)
        stop.set()
        raise RuntimeError("crash between commit and ack")

    crashed = MqttSubscriber(
        BrokerAddress.parse(url), subscription_for(), commit_then_crash, client_id=client_id, batch_size=50
    )
    assert crashed.receive_maximum == 100
    crashed.run(stop)
    # It committed what it was given and acknowledged nothing; the broker gave it no more than
    # the window, so that is all a restart can deliver twice.
    assert crashed.stats.acknowledged == 0
    assert 50 <= writer.summary.accepted <= crashed.receive_maximum

    with Listener(demo_engine, url, client_id=client_id, batch_size=50) as again:
        _wait_for(demo_engine, 2000)
    stats, summary = again.result
    assert summary.duplicate == writer.summary.accepted  # the committed, unacknowledged batches
    assert stats.received <= 2000 + crashed.receive_maximum
    _assert_exactly(demo_engine, burst)
