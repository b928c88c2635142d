"""Benchmark: a burst of readings over MQTT into the listener, with a listener restart midway.

    .venv/bin/python bench/iot.py --json [--n 50000] [--per-message 1] [--publisher raw|paho]
                                         [--database-url URL] [--mqtt-url URL] [--profile DIR]

A second process publishes ``--n`` readings as QoS 1 messages of ``--per-message`` readings each
(1 by default: the hardest case; a gateway batching its sensors sends more per message), each
stamped with its publish time as ``observed_at``. The listener runs in a third process and is
stopped with SIGTERM and started again once half the burst is stored. The last line printed is
JSON:

    readings_per_s   stored readings / (last commit - first publish)
    restart_gap_s    from the first listener's last commit to the second one's first
    readings_per_s_excluding_restart
                     stored readings / (elapsed - restart gap): the rate the listener sustains
    lost             published but not stored
    doubled          stored more than once (the unique identity makes this 0 by construction;
                     it is counted from the table, not assumed)
    redelivered      messages the broker delivered twice (flagged DUP; absorbed as duplicates)
    duplicates       readings the listener found stored already (what redelivery cost)
    latency_p50_ms   publish (observed_at) to the commit of the reading's batch
    latency_p99_ms
    listener_cpu_s   CPU seconds of the listener processes while ingesting (start-up excluded)
    listener_ceiling_per_s
                     readings per listener CPU second: what one listener could store with a
                     core of its own (it is one process, and Python threads share one core)
    publisher_per_s  readings per second the publisher got acknowledged by the broker
    load_avg_1m      the 1-minute load average when the run ended

The default publisher (``raw``) writes pre-encoded MQTT 3.1.1 PUBLISH packets to a socket and
counts PUBACKs in a reader thread, so that generating the load costs a few microseconds per
message and leaves the CPU to what is measured; ``paho`` publishes through paho-mqtt as
``sitewatch iot simulate`` does (about 40 us of CPU per message, which on a 2-core machine
halves what the listener gets). Progress is followed through the listener's commit log, not by
querying the table while the listener writes.

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
from typing import Any

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
    import cProfile

    import paho.mqtt.client as paho

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
        out.write(json.dumps({"k": args.index, "n": len(lat), "t": committed.timestamp(), "lat": lat}) + "\n")
        out.flush()

    def announce() -> None:
        ready.wait()
        Path(args.ready_file).write_text("ready")

    main_prof = net_prof = None
    if args.profile:
        # The caller's thread validates and writes; paho's network thread reads the socket.
        main_prof, net_prof = cProfile.Profile(), cProfile.Profile()
        thread_main = paho.Client._thread_main

        def profiled(self):
            net_prof.enable()
            try:
                thread_main(self)
            finally:
                net_prof.disable()

        paho.Client._thread_main = profiled
        main_prof.enable()
    threading.Thread(target=announce, daemon=True).start()
    cpu_start = time.process_time()  # all threads of this process; imports are done
    stats, summary = run_listener(
        engine,
        args.mqtt_url,
        stop=stop,
        client_id=args.client_id,
        on_commit=on_commit,
        ready=ready,
        batch_size=args.batch_size,
        **({} if args.receive_maximum is None else {"receive_maximum": args.receive_maximum}),
    )
    cpu = time.process_time() - cpu_start
    if main_prof is not None and net_prof is not None:
        main_prof.disable()
        tag = Path(args.stats_file).stem
        main_prof.dump_stats(str(Path(args.profile) / f"{tag}-main.prof"))
        net_prof.dump_stats(str(Path(args.profile) / f"{tag}-network.prof"))
    out.close()
    Path(args.stats_file).write_text(
        json.dumps({"redelivered": stats.redelivered, "duplicate": summary.duplicate, "cpu_s": cpu})
    )


# ---------------------------------------------------------------- child: publisher


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


class RawPublisher:
    """A minimal MQTT 3.1.1 QoS 1 publisher: pre-encoded packets out, PUBACKs counted in a thread."""

    def __init__(self, url: str, client_id: str, *, window: int = 20_000) -> None:
        from iot.mqtt import BrokerAddress

        address = BrokerAddress.parse(url)
        self.sock = socket.create_connection((address.host, address.port), timeout=10)
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cid = client_id.encode()
        # CONNECT: protocol "MQTT" level 4, clean session, keep-alive off (no PINGREQ needed).
        body = b"\x00\x04MQTT\x04\x02\x00\x00" + len(cid).to_bytes(2, "big") + cid
        self.sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
        connack = b""
        while len(connack) < 4:
            chunk = self.sock.recv(4 - len(connack))
            if not chunk:
                raise RuntimeError("broker closed the connection before CONNACK")
            connack += chunk
        if connack[0] != 0x20 or connack[3] != 0:
            raise RuntimeError(f"broker refused the connection: {connack!r}")
        self.window = window
        self.sent = 0
        self.acked = 0
        self._mid = 0
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        pending = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            pending += data
            whole = len(pending) // 4 * 4
            # Only PUBACKs (0x40, length 2, packet id) come back to a QoS 1 publisher.
            if any(pending[i] != 0x40 for i in range(0, whole, 4)):
                raise RuntimeError("unexpected packet from the broker")
            pending = pending[whole:]
            with self._cond:
                self.acked += whole // 4
                self._cond.notify_all()

    def packet(self, topic: str, payload: bytes) -> bytes:
        self._mid = self._mid % 65_535 + 1
        t = topic.encode()
        body = len(t).to_bytes(2, "big") + t + self._mid.to_bytes(2, "big") + payload
        return b"\x32" + _remaining_length(len(body)) + body

    def send(self, packets: list[bytes]) -> None:
        with self._cond:
            while self.sent + len(packets) - self.acked > self.window:
                self._cond.wait(1.0)
        self.sock.sendall(b"".join(packets))
        self.sent += len(packets)

    def flush(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.acked < self.sent:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.sent - self.acked} publishes unacknowledged")
                self._cond.wait(0.5)
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


def _messages(n: int, per_message: int) -> list[tuple[str, int]]:
    """(topic, readings) of each message: 6 demo sites x 100 sensors, in turn."""
    from iot.readings import topic_for

    sites = [s.id for s in demo_portfolio().sites]
    sensors = [f"bench-{k:03d}" for k in range(100)]
    out = []
    left, i = n, 0
    while left > 0:
        k = min(per_message, left)
        out.append((topic_for(sites[i % len(sites)], sensors[(i // len(sites)) % len(sensors)]), k))
        left -= k
        i += 1
    return out


def child_publish(args: argparse.Namespace) -> None:
    messages = _messages(args.n, args.per_message)
    rng = random.Random(7)
    chunk = 500  # messages stamped together; fewer than one round of topics, so stamps stay unique
    started = time.time()
    stamp = datetime.now(UTC) - timedelta(seconds=1)

    def payloads(lo: int, hi: int) -> list[tuple[str, bytes]]:
        # Every reading of the chunk gets the chunk's publish time plus its own microsecond, and
        # the next chunk starts after the last of them: (site, sensor, observed_at) is unique.
        nonlocal stamp
        stamp = max(datetime.now(UTC), stamp + timedelta(microseconds=1))
        out = []
        for topic, k in messages[lo:hi]:
            items = []
            for _ in range(k):
                items.append(
                    {
                        "kind": "power_kwh",
                        "observed_at": stamp.isoformat(),
                        "value": round(rng.uniform(0, 50), 3),
                        "unit": "kWh",
                    }
                )
                stamp += timedelta(microseconds=1)
            out.append((topic, json.dumps(items[0] if args.per_message == 1 else items).encode()))
        return out

    if args.publisher == "raw":
        pub = RawPublisher(args.mqtt_url, f"bench-pub-{uuid.uuid4().hex[:6]}")
        for lo in range(0, len(messages), chunk):
            pub.send([pub.packet(topic, payload) for topic, payload in payloads(lo, lo + chunk)])
        pub.flush(300)
    else:
        from iot.mqtt import BrokerAddress, MqttPublisher

        with MqttPublisher(BrokerAddress.parse(args.mqtt_url), client_id=f"bench-pub-{uuid.uuid4().hex[:6]}") as mp:
            for lo in range(0, len(messages), chunk):
                for topic, payload in payloads(lo, lo + chunk):
                    while mp.pending() >= 5000:
                        time.sleep(0.001)
                    mp.publish(topic, payload)
            mp.flush(300)
    Path(args.stats_file).write_text(
        json.dumps({"started": started, "finished": time.time(), "cpu_s": time.process_time()})
    )


# ---------------------------------------------------------------- parts: CPU cost per stage


def _bench_messages(n: int, per_message: int) -> list[tuple[str, bytes]]:
    start = datetime.now(UTC) - timedelta(hours=1)
    out = []
    for i, (topic, k) in enumerate(_messages(n, per_message)):
        items = [
            {
                "kind": "power_kwh",
                "observed_at": (start + timedelta(microseconds=i * per_message + j)).isoformat(),
                "value": 1.5 + (i % 40),
                "unit": "kWh",
            }
            for j in range(k)
        ]
        out.append((topic, json.dumps(items[0] if per_message == 1 else items).encode()))
    return out


def parts(args: argparse.Namespace) -> None:
    """CPU per reading of each stage in isolation, on one thread: what bounds one listener.

    ``writer_us``: validate and commit (MessageWriter) batches of 2000 messages, in process.
    ``subscriber_us``: receive and acknowledge (MqttSubscriber, handler doing nothing) messages
    queued for it on the private broker. Their sum is the listener's CPU per reading; its inverse
    is what one listener can store with a core to itself.
    """
    import resource

    from iot.mqtt import BrokerAddress, Message, MqttSubscriber
    from jobs.iot import MessageWriter

    def cpu_s() -> float:  # this process, every thread
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    work = Path(tempfile.mkdtemp(prefix="sitewatch-bench-iot-"))
    broker = None
    schema = admin = None
    url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    try:
        url, admin, schema = _private_schema(url)
        engine = store.connect(url)
        store.upgrade(engine)
        repo.save_portfolio(engine, demo_portfolio())
        payloads = _bench_messages(args.n, args.per_message)
        now = datetime.now(UTC)
        messages = [
            Message(topic, payload, now, time.monotonic(), False, i % 65_535 + 1, 1, 1)
            for i, (topic, payload) in enumerate(payloads)
        ]

        # Stage 1: validation and the database write.
        writer = MessageWriter(engine)
        writer(messages[:10])  # warm up: connection, site directory
        c0, t0 = cpu_s(), time.perf_counter()
        for lo in range(10, len(messages), 2000):
            writer(messages[lo : lo + 2000])
        writer_cpu, writer_wall = cpu_s() - c0, time.perf_counter() - t0
        readings = writer.summary.accepted

        # Stage 2: MQTT receive and acknowledge, with messages already queued at the broker.
        broker, mqtt_url = start_broker(work)
        address = BrokerAddress.parse(mqtt_url)
        got = [0]
        done = threading.Event()

        def nothing(batch) -> None:
            got[0] += len(batch)
            if got[0] >= len(payloads):
                done.set()

        client_id = f"bench-parts-{uuid.uuid4().hex[:6]}"
        stop = threading.Event()
        sub = MqttSubscriber(address, "sitewatch/sites/+/sensors/+", nothing, client_id=client_id)
        th = threading.Thread(target=sub.run, args=(stop,))
        th.start()
        sub.wait_subscribed(10)
        stop.set()
        th.join()
        pub = RawPublisher(mqtt_url, f"bench-pub-{uuid.uuid4().hex[:6]}")
        for lo in range(0, len(payloads), 500):
            pub.send([pub.packet(topic, payload) for topic, payload in payloads[lo : lo + 500]])
        pub.flush(300)
        stop = threading.Event()
        sub = MqttSubscriber(address, "sitewatch/sites/+/sensors/+", nothing, client_id=client_id)
        c0, t0 = cpu_s(), time.perf_counter()
        th = threading.Thread(target=sub.run, args=(stop,))
        th.start()
        done.wait(300)
        sub_cpu, sub_wall = cpu_s() - c0, time.perf_counter() - t0
        stop.set()
        th.join()

        writer_us = writer_cpu / readings * 1e6
        subscriber_us = sub_cpu / args.n * 1e6
        result = {
            "backend": engine.dialect.name,
            "n": args.n,
            "per_message": args.per_message,
            "writer_us": round(writer_us, 1),
            "writer_per_s_wall": round(readings / writer_wall, 1),
            "subscriber_us": round(subscriber_us, 1),
            "subscriber_per_s_wall": round(args.n / sub_wall, 1),
            "listener_us": round(writer_us + subscriber_us, 1),
            "ceiling_per_s": round(1e6 / (writer_us + subscriber_us), 1),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        engine.dispose()
        print(json.dumps(result))
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        _drop_schema(admin, schema)
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- parent


def _count(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM readings")).scalar_one()
        distinct = conn.execute(
            text("SELECT count(*) FROM (SELECT DISTINCT site_id, sensor_id, observed_at FROM readings) AS d")
        ).scalar_one()
    return int(total), int(distinct)


class CommitLog:
    """Follows the listeners' commit log: readings stored so far, without querying the table."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.stored = 0
        self.commits: list[float] = []
        self.commits_by_listener: dict[int, list[float]] = {}
        self.latencies: list[float] = []

    def poll(self) -> int:
        if self.path.exists():
            with self.path.open(encoding="utf-8") as f:
                f.seek(self.offset)
                while True:
                    line = f.readline()
                    if not line.endswith("\n"):
                        break  # partly written: read it next time
                    self.offset += len(line.encode())
                    rec = json.loads(line)
                    self.stored += rec["n"]
                    if rec["lat"]:
                        self.commits.append(rec["t"])
                        self.commits_by_listener.setdefault(rec["k"], []).append(rec["t"])
                        self.latencies.extend(rec["lat"])
        return self.stored

    def restart_gap_s(self) -> float:
        """Seconds between the first listener's last commit and the second one's first."""
        first, second = self.commits_by_listener.get(0), self.commits_by_listener.get(1)
        return max(0.0, min(second) - max(first)) if first and second else 0.0


def _cpu_s_of(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _print_profile(directory: Path, log) -> None:
    import io
    import pstats

    for part in ("main", "network"):
        files = sorted(str(f) for f in directory.glob(f"listener-*-{part}.prof"))
        if not files:
            continue
        buf = io.StringIO()
        stats = pstats.Stats(*files, stream=buf)
        stats.sort_stats("tottime").print_stats(18)
        log(f"--- listener {part} thread, by own time ---\n{buf.getvalue()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000, help="readings to publish")
    parser.add_argument("--per-message", type=int, default=1, help="readings per MQTT message (JSON array if > 1)")
    parser.add_argument("--publisher", choices=["raw", "paho"], default="raw", help="how the load is generated")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--mqtt-url", default=None, help="default: a private mosquitto on a free port")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--profile", default=None, help="write cProfile files of the listener here and summarise")
    parser.add_argument(
        "--restart",
        choices=["term", "kill"],
        default="term",
        help="stop the listener midway with SIGTERM (clean) or SIGKILL (a crash: nothing drained or acknowledged)",
    )
    parser.add_argument("--batch-size", type=int, default=2000, help="listener: most messages per commit")
    parser.add_argument("--receive-maximum", type=int, default=None, help="listener: MQTT 5 window (default 2 batches)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "parts", "_listen", "_publish"])
    parser.add_argument("--latency-file")
    parser.add_argument("--ready-file")
    parser.add_argument("--stats-file")
    parser.add_argument("--client-id")
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args()
    if args.per_message < 1:
        parser.error("--per-message must be at least 1")
    if args.mode == "_listen":
        child_listen(args)
        return
    if args.mode == "_publish":
        child_publish(args)
        return
    if args.mode == "parts":
        parts(args)
        return
    run(args)


def _private_schema(url: str) -> tuple[str, Any, str | None]:
    """On PostgreSQL, a throwaway schema: (URL whose search_path starts there, admin engine, name)."""
    if not url.startswith("postgresql"):
        return url, None, None
    schema = f"bench_iot_{uuid.uuid4().hex[:8]}"
    admin = store.connect(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema},public", admin, schema


def _drop_schema(admin: Any, schema: str | None) -> None:
    if schema is not None and admin is not None:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def run(args: argparse.Namespace) -> None:
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr))
    work = Path(tempfile.mkdtemp(prefix="sitewatch-bench-iot-"))
    broker = None
    schema = None
    admin = None
    url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    profile_dir = Path(args.profile).resolve() if args.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    try:
        url, admin, schema = _private_schema(url)
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
        common += ["--batch-size", str(args.batch_size)]
        if args.receive_maximum is not None:
            common += ["--receive-maximum", str(args.receive_maximum)]
        if profile_dir is not None:
            common += ["--profile", str(profile_dir)]

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
                    "--index",
                    str(k),
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
        publisher = subprocess.Popen(
            [
                *me,
                "_publish",
                *common,
                "--n",
                str(args.n),
                "--per-message",
                str(args.per_message),
                "--publisher",
                args.publisher,
                "--stats-file",
                str(pub_stats),
            ]
        )
        log_ = CommitLog(lat_file)

        # Restart the listener once half the burst is stored.
        deadline = time.monotonic() + args.timeout
        while log_.poll() < args.n // 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        log(f"restarting the listener ({args.restart}) at {log_.stored} stored")
        t_stop = time.monotonic()
        listener.send_signal(signal.SIGKILL if args.restart == "kill" else signal.SIGTERM)
        listener.wait(60)
        log(f"listener stopped in {time.monotonic() - t_stop:.2f} s")
        stopped = time.monotonic()
        listener = start_listener(1)
        log(f"listener restarted in {time.monotonic() - stopped:.2f} s")

        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            stored = log_.poll()
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
        log_.poll()

        total, distinct = _count(engine)
        pub = json.loads(pub_stats.read_text())
        # A killed listener leaves no stats: count what it did from the table and the log.
        listeners = [
            json.loads(f.read_text()) if f.exists() else {"redelivered": 0, "duplicate": 0, "cpu_s": 0.0}
            for f in (work / f"listener-{k}.json" for k in (0, 1))
        ]
        elapsed = max(log_.commits) - pub["started"]
        latencies = sorted(log_.latencies)
        gap = log_.restart_gap_s()
        listener_cpu = sum(x["cpu_s"] for x in listeners)
        result = {
            "backend": engine.dialect.name,
            "n": args.n,
            "per_message": args.per_message,
            "publisher": args.publisher,
            "stored": distinct,
            "readings_per_s": round(distinct / elapsed, 1),
            "lost": args.n - distinct,
            "doubled": total - distinct,
            "redelivered": sum(x["redelivered"] for x in listeners),
            "duplicates": sum(x["duplicate"] for x in listeners),
            "latency_p50_ms": round(statistics.median(latencies), 1),
            "latency_p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "elapsed_s": round(elapsed, 2),
            # The restart costs a Python start-up (imports: 1-2 s idle, 3-5 s at load 7-10) with
            # nothing stored; without that gap the rate is what the listener sustains.
            "restart_gap_s": round(gap, 2),
            "readings_per_s_excluding_restart": round(distinct / (elapsed - gap), 1),
            "listener_restarts": 1,
            "restart": args.restart,
            "batch_size": args.batch_size,
            "receive_maximum": args.receive_maximum or min(65_535, 2 * args.batch_size),
            "listener_cpu_s": round(listener_cpu, 2),
            "listener_ceiling_per_s": round(distinct / listener_cpu, 1) if listener_cpu else None,
            "publisher_per_s": round(args.n / (pub["finished"] - pub["started"]), 1),
            "publisher_cpu_s": round(pub["cpu_s"], 2),
            "broker_cpu_s": None if broker is None else _cpu_s_of(broker.pid),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        engine.dispose()
        if profile_dir is not None:
            _print_profile(profile_dir, log)
        print(json.dumps(result))
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        _drop_schema(admin, schema)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
