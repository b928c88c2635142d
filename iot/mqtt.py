"""MQTT transport for site feeds: a batching subscriber that acknowledges only durable batches.

Delivery guarantee (at least once, end to end). The subscriber connects with MQTT 5, a fixed
client id, ``clean_start=False`` and a session expiry, and subscribes at QoS 1, so the broker
keeps every message for it while it is away. paho's manual acknowledgement (``manual_ack=True``)
holds back the PUBACK of each message until the batch handler has returned, that is, until the
batch is committed. A crash or restart before that leaves the message unacknowledged, and the
broker delivers it again; the store makes a second delivery a no-op. A PUBACK is only sent on
the connection the message arrived on (packet ids are per connection), so after a reconnect the
broker redelivers instead of a stale id acknowledging someone else's message.

Flow control comes from MQTT 5 Receive Maximum: the broker stops sending once that many messages
are unacknowledged, so a slow database backs the flow up into the broker instead of memory. It is
also what a restart costs: every message the broker has sent but not had acknowledged is
delivered again to the next run, so the window is kept at two commit batches (one being
committed, one arriving), which bounds redeliveries after a restart or crash to that.

Broker requirements for "nothing lost" (Mosquitto): ``persistence true`` (sessions and queued
messages survive a broker restart; they are saved at shutdown and every ``autosave_interval``),
and ``max_queued_messages 0`` or a limit above the largest backlog you must survive. Mosquitto's
default of 1000 queued messages per client *drops* QoS 1 messages beyond it while the listener
is away.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from iot.errors import BrokerUnavailableError

logger = logging.getLogger(__name__)

#: What ``sitewatch iot listen`` and ``simulate`` use when SITEWATCH_MQTT_URL is not set.
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is: parsed from ``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Parse an ``mqtt://`` or ``mqtts://`` URL.

        Raises:
            ValueError: Another scheme, or no host.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"MQTT URL {url!r} must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"MQTT URL {url!r} has no host")
        tls = parts.scheme in ("mqtts", "ssl")
        return cls(
            parts.hostname,
            parts.port or (8883 if tls else 1883),
            tls,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message as the batch handler sees it.

    Attributes:
        topic: The topic it was published to.
        payload: The raw payload bytes.
        received_at_utc: When the subscriber received it.
        received_monotonic: ``time.monotonic()`` at receipt, for latency figures.
        redelivered: The broker flagged it as a repeat (DUP): it may be stored already.
            Mosquitto 2.0 also flags messages queued for a session that it had not yet
            delivered (20 000 of a 50 000 burst after one restart, of which none had reached
            the listener before), so this counts resends, not readings seen twice.
    """

    topic: str
    payload: bytes
    received_at_utc: datetime
    received_monotonic: float
    redelivered: bool
    #: Packet id and QoS, to acknowledge it; only valid on the connection ``generation``.
    mid: int
    qos: int
    generation: int


#: Called with each batch; must return only once the batch is durable (committed), and raise
#: to have it retried. Content problems must be dead-lettered, not raised.
BatchHandler = Callable[[Sequence[Message]], None]


@dataclass(slots=True)
class SubscriberStats:
    """Counters of one subscriber run."""

    received: int = 0
    acknowledged: int = 0
    redelivered: int = 0
    batches: int = 0
    handler_retries: int = 0
    connections: int = 0


class _ReadAheadSocket:
    """A TCP socket read in 64 KiB gulps and handed to paho a few bytes at a time.

    paho reads each packet with three ``recv`` calls (type, length, body) after a ``select``,
    which made system calls the largest part of receiving a small message. paho's loop skips
    the ``select`` wait while ``pending()`` reports buffered bytes (the hook it has for TLS
    sockets, whose records it must drain the same way), and it already wraps sockets for
    websockets, so a socket-like object is a supported shape. Partial reads are normal
    ``recv`` semantics, which paho handles.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes: buffered ones first, else one large read (may raise BlockingIOError)."""
        if self._pos >= len(self._buf):
            self._buf = self._sock.recv(_READ_AHEAD_BYTES)
            self._pos = 0
        chunk = self._buf[self._pos : self._pos + bufsize]
        self._pos += len(chunk)
        return chunk

    def pending(self) -> int:
        """Bytes received and not yet handed to paho."""
        return len(self._buf) - self._pos

    def send(self, data: bytes | bytearray) -> int:
        """Send as the socket does."""
        return self._sock.send(data)

    def fileno(self) -> int:
        """The socket's descriptor, for ``select``."""
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        """Set the socket's blocking mode."""
        self._sock.setblocking(flag)

    def close(self) -> None:
        """Close the socket; what was read ahead is dropped with it."""
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


#: Bytes read from the broker per system call by the subscriber.
_READ_AHEAD_BYTES = 256 * 1024


class _ReadAheadClient(paho.Client):
    """paho's client reading plain TCP through :class:`_ReadAheadSocket` (TLS sockets are left as they are)."""

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if type(sock) is socket.socket:
            return _ReadAheadSocket(sock)
        return sock


def _client(address: BrokerAddress, client_id: str, *, manual_ack: bool, read_ahead: bool = False) -> paho.Client:
    client = (_ReadAheadClient if read_ahead else paho.Client)(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=manual_ack,
    )
    if address.tls:
        client.tls_set()
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    return client


class MqttSubscriber:
    """Receive readings in batches from a persistent QoS 1 session; acknowledge after the handler.

    Args:
        address: The broker.
        subscription: Topic filter, e.g. ``sitewatch/sites/+/sensors/+``.
        handler: Stores one batch; see :data:`BatchHandler`.
        client_id: Fixed per deployment: the broker keeps the session under this id.
        batch_size: Most messages handed to ``handler`` at once.
        linger_s: How long to wait for more messages before handing over a partial batch.
        session_expiry_s: How long the broker keeps the session (and queues for it) while the
            subscriber is away.
        receive_maximum: Most unacknowledged messages the broker may send (MQTT 5 flow control),
            and so the most that are delivered again after a restart; default two batches.
        reconnect_min_s: First delay before reconnecting; doubles up to ``reconnect_max_s``.
        reconnect_max_s: Longest delay between reconnection attempts.
        retry_max_s: Longest delay between attempts to hand a failed batch over again.
    """

    def __init__(
        self,
        address: BrokerAddress,
        subscription: str,
        handler: BatchHandler,
        *,
        client_id: str = "sitewatch-ingest",
        batch_size: int = 2000,
        linger_s: float = 0.05,
        session_expiry_s: int = 7 * 24 * 3600,
        receive_maximum: int | None = None,
        reconnect_min_s: int = 1,
        reconnect_max_s: int = 30,
        retry_max_s: float = 30.0,
    ) -> None:
        if receive_maximum is None:
            receive_maximum = min(65_535, 2 * batch_size)
        if not 1 <= receive_maximum <= 65_535:
            raise ValueError(f"receive_maximum {receive_maximum} must be in 1..65535 (MQTT 5)")
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size} must be at least 1")
        self.address = address
        self.subscription = subscription
        self.handler = handler
        self.client_id = client_id
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.session_expiry_s = session_expiry_s
        self.receive_maximum = receive_maximum
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.retry_max_s = retry_max_s
        self.stats = SubscriberStats()
        # The network thread appends, the caller's thread pops: deque operations are atomic, and
        # ``_wake`` is set only when the waiting side has enough (once per batch, not per message:
        # a queue that wakes its reader on every message costs more than parsing it).
        self._inbox: deque[Message] = deque()
        self._want = 1
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._disconnected = threading.Event()
        self._barrier = threading.Event()

    # ------------------------------------------------------------ paho callbacks (network thread)

    def _on_connect(self, client: paho.Client, _userdata: Any, flags: Any, reason: ReasonCode, _props: Any) -> None:
        if reason.is_failure:
            logger.error("broker %s refused the connection: %s", self.address, reason)
            return
        with self._lock:
            self._generation += 1
        self.stats.connections += 1
        self._connected.set()
        logger.info(
            "connected to %s as %s (session %s)",
            self.address,
            self.client_id,
            "resumed" if flags.session_present else "new",
        )
        # Subscribing again is harmless when the session was resumed and needed when it expired.
        client.subscribe(self.subscription, qos=1)

    def _on_subscribe(self, _client: paho.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any) -> None:
        if any(r.is_failure for r in reasons):
            logger.error("subscription to %s refused: %s", self.subscription, reasons)
            return
        self._subscribed.set()

    def _on_unsubscribe(self, _client: paho.Client, _userdata: Any, _mid: int, _reasons: Any, _props: Any) -> None:
        self._barrier.set()

    def _on_disconnect(self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _p: Any) -> None:
        with self._lock:
            self._generation += 1  # packet ids of the old connection must not be acknowledged
        self._connected.clear()
        self._subscribed.clear()
        self._disconnected.set()
        if reason.is_failure:
            logger.warning("lost connection to %s (%s); reconnecting with backoff", self.address, reason)

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        logger.warning("cannot connect to %s; retrying with backoff", self.address)

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        # Only this thread changes the generation, so reading it needs no lock here. paho hands
        # payloads over as bytes already (a slice of the packet); copy only what is not.
        payload = msg.payload
        self._inbox.append(
            Message(
                msg.topic,
                payload if isinstance(payload, bytes) else bytes(payload),
                datetime.now(UTC),
                time.monotonic(),
                bool(msg.dup),
                msg.mid,
                msg.qos,
                self._generation,
            )
        )
        if len(self._inbox) >= self._want:
            self._wake.set()

    # ------------------------------------------------------------ main loop (caller's thread)

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Block until the subscription is active (tests and benches use it)."""
        return self._subscribed.wait(timeout_s)

    def run(self, stop: threading.Event) -> SubscriberStats:
        """Receive and hand over batches until ``stop`` is set, then hand over what arrived and leave.

        The broker keeps the session after a clean stop, so messages published meanwhile wait
        for the next run. Connection losses are retried forever with exponential backoff.
        """
        client = _client(self.address, self.client_id, manual_ack=True, read_ahead=True)
        client.reconnect_delay_set(self.reconnect_min_s, self.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry_s
        props.ReceiveMaximum = self.receive_maximum
        client.connect_async(self.address.host, self.address.port, keepalive=30, clean_start=False, properties=props)
        client.loop_start()
        logger.info("listening on %s for %s", self.address, self.subscription)
        try:
            while not stop.is_set():
                batch = self._take(stop)
                if batch:
                    self._hand_over(client, batch, stop)
            # Stopping: what already arrived is stored and acknowledged; anything later stays
            # with the broker for the next run.
            rest = self._drain(10 * self.batch_size)
            for lo in range(0, len(rest), self.batch_size):
                self._hand_over(client, rest[lo : lo + self.batch_size], stop)
        finally:
            self._leave(client)
        logger.info(
            "stopped: %s received, %s acknowledged, %s redelivered, %s batches",
            self.stats.received,
            self.stats.acknowledged,
            self.stats.redelivered,
            self.stats.batches,
        )
        return self.stats

    def _leave(self, client: paho.Client) -> None:
        """Make sure the broker has processed the last acknowledgements, then disconnect.

        Closing a socket that still has unread data (the broker keeps sending up to the receive
        window) makes the kernel send a reset, and the broker then discards what it had not read
        yet: the last PUBACKs, so that batch would be delivered again. An UNSUBSCRIBE of a filter
        we never subscribed is a round trip the broker answers only after everything sent before
        it, so its UNSUBACK proves the acknowledgements arrived (the real subscription stays).
        """
        if self._connected.is_set():
            self._barrier.clear()
            rc, _mid = client.unsubscribe(f"{self.client_id}/sitewatch-barrier")
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not self._barrier.wait(5.0):
                logger.warning("broker %s did not confirm the last acknowledgements", self.address)
        self._disconnected.clear()
        if client.disconnect() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._disconnected.wait(5.0)  # written after every acknowledgement queued before it
        client.loop_stop()

    def _take(self, stop: threading.Event) -> list[Message]:
        """Wait for a batch: ``batch_size`` messages, or what arrived ``linger_s`` after the first."""
        inbox = self._inbox
        deadline: float | None = None
        while len(inbox) < self.batch_size and not stop.is_set():
            now = time.monotonic()
            if inbox:
                if deadline is None:
                    deadline = now + self.linger_s
                if now >= deadline:
                    break
                self._want, timeout = self.batch_size, deadline - now
            else:
                self._want, timeout = 1, 0.2
            self._wake.clear()
            if len(inbox) >= self._want:  # arrived between the check and the clear
                continue
            if not self._wake.wait(timeout) and not inbox:
                return []
        return self._drain(self.batch_size)

    def _drain(self, limit: int) -> list[Message]:
        out: list[Message] = []
        inbox = self._inbox
        while inbox and len(out) < limit:
            out.append(inbox.popleft())
        return out

    def _hand_over(self, client: paho.Client, batch: list[Message], stop: threading.Event) -> None:
        self.stats.received += len(batch)
        self.stats.redelivered += sum(1 for m in batch if m.redelivered)
        delay = 0.5
        while True:
            try:
                self.handler(batch)
                break
            except Exception as exc:  # the handler's failure is transient by contract: retry
                self.stats.handler_retries += 1
                logger.warning("batch of %s not stored (%s); retrying in %.1f s", len(batch), exc, delay)
                if stop.wait(delay):
                    logger.warning("stopping with %s unstored messages; the broker will redeliver them", len(batch))
                    return
                delay = min(delay * 2, self.retry_max_s)
        self.stats.batches += 1
        with self._lock:
            generation = self._generation
        for m in batch:
            if m.generation != generation or m.qos == 0:
                continue  # stale packet id: the broker redelivers it on the new connection
            if client.ack(m.mid, m.qos) == MQTTErrorCode.MQTT_ERR_SUCCESS:
                self.stats.acknowledged += 1


class MqttPublisher:
    """Publish payloads at QoS 1 and wait until the broker has acknowledged every one.

    Used by ``sitewatch iot simulate`` and the benchmark. The session is persistent too, so
    publishes the broker has not acknowledged are sent again after a reconnect.

    Args:
        address: The broker.
        client_id: The publisher's id.
        max_inflight: Most unacknowledged publishes on the wire; 0 = no limit (the default:
            paho rescans its whole queue on every acknowledgement when there is a limit, which
            caps a publisher at a few thousand messages per second; bound the backlog with
            :meth:`pending` instead).
        connect_timeout_s: How long to wait for the first connection.
    """

    def __init__(
        self, address: BrokerAddress, *, client_id: str, max_inflight: int = 0, connect_timeout_s: float = 10.0
    ) -> None:
        self.address = address
        self._client = _client(address, client_id, manual_ack=False)
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(1, 10)
        self._client.on_publish = self._on_publish
        self._client.on_connect = self._on_connect
        self._connected = threading.Event()
        self._lock = threading.Condition()
        self._sent = 0
        self._acked = 0
        self.connect_timeout_s = connect_timeout_s

    def _on_connect(self, _c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if not reason.is_failure:
            self._connected.set()

    def _on_publish(self, _c: paho.Client, _u: Any, _mid: int, _reason: Any, _p: Any) -> None:
        with self._lock:
            self._acked += 1
            self._lock.notify_all()

    def __enter__(self) -> MqttPublisher:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        try:
            self._client.connect(
                self.address.host, self.address.port, keepalive=30, clean_start=False, properties=props
            )
        except OSError as exc:
            raise BrokerUnavailableError(f"cannot connect to MQTT broker {self.address}: {exc}") from exc
        self._client.loop_start()
        if not self._connected.wait(self.connect_timeout_s):
            self._client.loop_stop()
            raise BrokerUnavailableError(f"MQTT broker {self.address} did not accept the connection")
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes | str) -> None:
        """Queue one QoS 1 publish (returns at once; see :meth:`flush`)."""
        with self._lock:
            self._sent += 1
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise BrokerUnavailableError(f"publish to {topic} failed: {paho.error_string(info.rc)}")

    def pending(self) -> int:
        """Publishes not yet acknowledged by the broker."""
        with self._lock:
            return self._sent - self._acked

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until the broker has acknowledged every publish.

        Raises:
            BrokerUnavailableError: Some are still unacknowledged after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._acked < self._sent:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrokerUnavailableError(
                        f"{self._sent - self._acked} publishes unacknowledged by {self.address} after {timeout_s} s"
                    )
                self._lock.wait(min(left, 0.5))


def publish_all(
    address: BrokerAddress,
    messages: Iterable[tuple[str, bytes | str]],
    *,
    client_id: str,
    max_pending: int = 20_000,
    timeout_s: float = 120.0,
) -> int:
    """Publish (topic, payload) pairs at QoS 1 and wait for the broker to acknowledge all.

    Returns:
        How many messages were published.
    """
    n = 0
    with MqttPublisher(address, client_id=client_id) as pub:
        for topic, payload in messages:
            while pub.pending() >= max_pending:  # bound memory for long simulations
                time.sleep(0.005)
            pub.publish(topic, payload)
            n += 1
        pub.flush(timeout_s)
    return n
