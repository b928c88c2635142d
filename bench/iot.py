"""Benchmark: a burst of readings over MQTT into the listener, with a listener restart midway.

    .venv/bin/python bench/iot.py --json [--n 50000] [--database-url URL] [--mqtt-url URL]

A second process publishes ``--n`` single-reading QoS 1 messages (each stamped with its publish
time as ``observed_at``); the listener runs in a third process and is stopped with SIGTERM and
started again once half the burst is stored. The last line printed is JSON:

    readings_per_s   stored readings / (last commit - first publish)
    lost             published but not stored
    doubled          stored more than once (the unique identity makes this 0 by construction;
                     it is counted from the table, not assumed)
    redelivered      messages the broker delivered twice (absorbed as duplicates)
    latency_p50_ms   publish (observed_at) to the commit of the reading's batch
    latency_p99_ms

By default a private Mosquitto is started on a free port with ``max_queued_messages 0``:
a stock Mosquitto keeps only 1000 queued messages per offline client and drops the rest, so a
burst that outlives a listener restart would be cut there (see iot/mqtt.py). With a
PostgreSQL ``--database-url`` the benchmark works in a throwaway schema it drops afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

import store  # noqa: E402
from aoi.demo import demo_portfolio  # noqa: E402
from store import repo  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 0\nlog_dest none\n" + ("user root\n" if os.geteuid() == 0 else "")
    )
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"mqtt://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("private mosquitto did not start")


# ---------------------------------------------------------------- child: listener


def child_listen(args: argparse.Namespace) -> None:
    from jobs.iot import run_listener

    engine = store.connect(args.database_url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ready = threading.Event()
    out = open(args.latency_file, "a", encoding="utf-8")

    def on_commit(pairs, committed):
        lat = [
            round((committed - r.observed_at_utc).total_seconds() * 1000, 3)
            for r, outcome in pairs
            if outcome.status == "accepted"
        ]
        out.write(json.dumps({"t": committed.timestamp(), "lat": lat}) + "\n")
        out.flush()

    def announce() -> None:
        ready.wait()
        Path(args.ready_file).write_text("ready")

    threading.Thread(target=announce, daemon=True).start()
    stats, summary = run_listener(
        engine, args.mqtt_url, stop=stop, client_id=args.client_id, on_commit=on_commit, ready=ready
    )
    out.close()
    Path(args.stats_file).write_text(json.dumps({"redelivered": stats.redelivered, "duplicate": summary.duplicate}))


# ---------------------------------------------------------------- child: publisher


def child_publish(args: argparse.Namespace) -> None:
    from iot.mqtt import BrokerAddress, MqttPublisher
    from iot.readings import topic_for

    sites = [s.id for s in demo_portfolio().sites]
    sensors = [f"bench-{k:03d}" for k in range(100)]
    last: dict[tuple[str, str], datetime] = {}
    rng = random.Random(7)
    started = time.time()
    with MqttPublisher(BrokerAddress.parse(args.mqtt_url), client_id=f"bench-pub-{uuid.uuid4().hex[:6]}") as pub:
        for i in range(args.n):
            site, sensor = sites[i % len(sites)], sensors[(i // len(sites)) % len(sensors)]
            now = datetime.now(UTC)
            prev = last.get((site, sensor))
            if prev is not None and now <= prev:
                now = prev + timedelta(microseconds=1)
            last[(site, sensor)] = now
            payload = {
                "kind": "power_kwh",
                "observed_at": now.isoformat(),
                "value": round(rng.uniform(0, 50), 3),
                "unit": "kWh",
            }
            while pub.pending() >= 5000:
                time.sleep(0.001)
            pub.publish(topic_for(site, sensor), json.dumps(payload))
        pub.flush(300)
    Path(args.stats_file).write_text(json.dumps({"started": started, "finished": time.time()}))


# ---------------------------------------------------------------- parent


def _count(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM readings")).scalar_one()
        distinct = conn.execute(
            text("SELECT count(*) FROM (SELECT DISTINCT site_id, sensor_id, observed_at FROM readings) AS d")
        ).scalar_one()
    return int(total), int(distinct)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000, help="readings to publish")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--mqtt-url", default=None, help="default: a private mosquitto on a free port")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "_listen", "_publish"])
    parser.add_argument("--latency-file")
    parser.add_argument("--ready-file")
    parser.add_argument("--stats-file")
    parser.add_argument("--client-id")
    args = parser.parse_args()
    if args.mode == "_listen":
        child_listen(args)
        return
    if args.mode == "_publish":
        child_publish(args)
        return
    run(args)


def run(args: argparse.Namespace) -> None:
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr))
    work = Path(tempfile.mkdtemp(prefix="sitewatch-bench-iot-"))
    broker = None
    schema = None
    admin = None
    url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    try:
        if url.startswith("postgresql"):
            schema = f"bench_iot_{uuid.uuid4().hex[:8]}"
            admin = store.connect(url)
            with admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema},public"
        engine = store.connect(url)
        store.upgrade(engine)
        repo.save_portfolio(engine, demo_portfolio())
        if args.mqtt_url:
            mqtt_url = args.mqtt_url
        else:
            broker, mqtt_url = start_broker(work)
        log(f"database {engine.url.render_as_string()}, broker {mqtt_url}, n={args.n}")

        client_id = f"bench-listener-{uuid.uuid4().hex[:6]}"
        lat_file = work / "latency.jsonl"
        me = [sys.executable, str(Path(__file__).resolve())]
        common = ["--database-url", url, "--mqtt-url", mqtt_url, "--client-id", client_id]

        def start_listener(k: int) -> subprocess.Popen[bytes]:
            ready = work / f"ready-{k}"
            proc = subprocess.Popen(
                [
                    *me,
                    "_listen",
                    *common,
                    "--latency-file",
                    str(lat_file),
                    "--ready-file",
                    str(ready),
                    "--stats-file",
                    str(work / f"listener-{k}.json"),
                ]
            )
            deadline = time.monotonic() + 60
            while not ready.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("listener did not start")
                time.sleep(0.02)
            return proc

        listener = start_listener(0)
        pub_stats = work / "publisher.json"
        publisher = subprocess.Popen([*me, "_publish", *common, "--n", str(args.n), "--stats-file", str(pub_stats)])

        # Restart the listener once half the burst is stored.
        deadline = time.monotonic() + args.timeout
        while _count(engine)[0] < args.n // 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        log(f"restarting the listener at {_count(engine)[0]} stored")
        listener.send_signal(signal.SIGTERM)
        listener.wait(60)
        listener = start_listener(1)

        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            stored, _ = _count(engine)
            if stored >= args.n and publisher.poll() is not None:
                break
            if stored != last:
                last, last_change = stored, time.monotonic()
            elif time.monotonic() - last_change > 30 and publisher.poll() is not None:
                break  # nothing moves any more: what is missing is lost
            time.sleep(0.1)
        publisher.wait(60)
        listener.send_signal(signal.SIGTERM)
        listener.wait(60)

        total, distinct = _count(engine)
        first_publish = json.loads(pub_stats.read_text())["started"]
        commits, latencies = [], []
        for line in lat_file.read_text().splitlines():
            rec = json.loads(line)
            if rec["lat"]:
                commits.append(rec["t"])
                latencies.extend(rec["lat"])
        redelivered = sum(json.loads((work / f"listener-{k}.json").read_text())["redelivered"] for k in (0, 1))
        elapsed = max(commits) - first_publish
        latencies.sort()
        result = {
            "backend": engine.dialect.name,
            "n": args.n,
            "stored": distinct,
            "readings_per_s": round(distinct / elapsed, 1),
            "lost": args.n - distinct,
            "doubled": total - distinct,
            "redelivered": redelivered,
            "latency_p50_ms": round(statistics.median(latencies), 1),
            "latency_p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "elapsed_s": round(elapsed, 2),
            "listener_restarts": 1,
        }
        pub = json.loads(pub_stats.read_text())
        log(f"publisher: {args.n / (pub['finished'] - pub['started']):.0f} msg/s acknowledged by the broker")
        engine.dispose()
        print(json.dumps(result))
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        if schema is not None and admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
