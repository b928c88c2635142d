"""Site feeds wired to the database: MQTT listener, HTTP and CSV ingestion, features (simulated feeds: jobs.demo).

Every path goes through :func:`ingest_items`: validate each raw item (``iot.readings``), then
store the valid readings and the dead letters of the rest in one transaction
(``store.readings.save_batch``). Nothing is dropped: an item is accepted, a duplicate of a
stored reading, or dead-lettered with its reason.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal, overload

from sqlalchemy import Engine

from aoi.errors import SiteNotFoundError
from aoi.records import SiteWork
from iot.errors import BatchTooLargeError, CsvInvalidError
from iot.features import ACTIVITY_KINDS, SiteDayFeatures, daily_features, local_midnight_utc, work_levels
from iot.mqtt import BrokerAddress, Message, MqttSubscriber, SubscriberStats
from iot.readings import (
    TOPIC_ROOT,
    Parsed,
    Reading,
    Rejection,
    decode_json,
    ids_from_topic,
    parse_item,
    parse_payload,
    raw_text,
    reading_payload,
    subscription_for,
)
from iot.sitetime import site_timezone
from store import readings as readings_store
from store import repo
from store.readings import ReadingsRefusedError, ReadingStatus

logger = logging.getLogger(__name__)

Source = Literal["mqtt", "http", "csv", "sim"]
ItemStatus = Literal["accepted", "duplicate", "rejected"]

#: Most readings one HTTP request, CSV batch or MQTT message may carry.
MAX_BATCH = 5000


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What happened to one input item."""

    index: int
    status: ItemStatus
    reason: str | None = None


@dataclass(slots=True)
class IngestSummary:
    """Counts of an ingestion run."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0

    def add(self, outcomes: Iterable[ItemOutcome]) -> IngestSummary:
        """Count more outcomes; returns self."""
        for o in outcomes:
            if o.status == "accepted":
                self.accepted += 1
            elif o.status == "duplicate":
                self.duplicate += 1
            else:
                self.rejected += 1
        return self

    @property
    def total(self) -> int:
        """Items seen."""
        return self.accepted + self.duplicate + self.rejected


class SiteDirectory:
    """Which site ids exist, cached; a miss re-reads the portfolio at most every ``miss_refresh_s``.

    So a site added while a listener runs is known within seconds, and a flood of readings for
    an unknown site costs one query per ``miss_refresh_s``.
    """

    def __init__(self, engine: Engine, *, ttl_s: float = 300.0, miss_refresh_s: float = 5.0) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._miss_refresh_s = miss_refresh_s
        self._ids: set[str] = set()
        self._loaded = float("-inf")
        self._lock = threading.Lock()

    def _reload(self) -> None:
        self._ids = readings_store.known_site_ids(self._engine)
        self._loaded = time.monotonic()

    def __call__(self, site_id: str) -> bool:
        """Whether ``site_id`` is in the portfolio."""
        with self._lock:
            age = time.monotonic() - self._loaded
            if age > self._ttl_s or (site_id not in self._ids and age > self._miss_refresh_s):
                self._reload()
            return site_id in self._ids


# ---------------------------------------------------------------- the one ingestion path


@dataclass(slots=True)
class _Batch:
    """Parsed items of one batch, with each item's place in the outcome list."""

    readings: list[Reading] = field(default_factory=list)
    raws: list[Any] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    reading_index: list[int] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    rejection_index: list[int] = field(default_factory=list)

    def add(self, index: int, parsed: Parsed, raw: Any, origin: str = "") -> None:
        if parsed.reading is not None:
            self.readings.append(parsed.reading)
            self.raws.append(raw)  # rendered as text only if it turns out to conflict
            self.origins.append(origin)
            self.reading_index.append(index)
        elif parsed.rejection is not None:
            self.rejections.append(parsed.rejection)
            self.rejection_index.append(index)

    @property
    def size(self) -> int:
        return len(self.reading_index) + len(self.rejection_index)


class _RawTexts(Sequence[str]):
    """Raw items rendered as dead-letter text on access (most never are)."""

    def __init__(self, raws: list[Any]) -> None:
        self._raws = raws

    def __len__(self) -> int:
        return len(self._raws)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._text(r) for r in self._raws[i]]
        return self._text(self._raws[i])

    @staticmethod
    def _text(raw: Any) -> str:
        return raw_text(reading_payload(raw) if isinstance(raw, Reading) else raw)


def _store(engine: Engine, batch: _Batch, *, source: Source) -> dict[int, ItemOutcome]:
    """Save one parsed batch; if the database refuses its content, halve it to find the item."""
    try:
        result = readings_store.save_batch(
            engine, batch.readings, batch.rejections, source=source, raws=_RawTexts(batch.raws), origins=batch.origins
        )
    except ReadingsRefusedError as exc:
        if batch.size > 1:
            return _store_halves(engine, batch, source=source)
        # One item the database will not take: keep it as a dead letter instead.
        if batch.readings:
            r = batch.readings[0]
            reason = f"database refused the reading: {exc}"
            dead = Rejection(_RawTexts._text(batch.raws[0]), reason, batch.origins[0], r.site_id, r.sensor_id)
            readings_store.save_batch(engine, (), [dead], source=source)
            logger.error("reading dead-lettered: %s", reason, extra={"site_id": r.site_id})
            return {batch.reading_index[0]: ItemOutcome(batch.reading_index[0], "rejected", reason)}
        raise
    out: dict[int, ItemOutcome] = {}
    for k, status in enumerate(result.statuses):
        i = batch.reading_index[k]
        if status is ReadingStatus.ACCEPTED:
            out[i] = ItemOutcome(i, "accepted")
        elif status is ReadingStatus.DUPLICATE:
            out[i] = ItemOutcome(i, "duplicate")
        else:
            out[i] = ItemOutcome(i, "rejected", result.conflicts[k])
    for k, rejection in enumerate(batch.rejections):
        i = batch.rejection_index[k]
        out[i] = ItemOutcome(i, "rejected", rejection.reason)
    return out


def _store_halves(engine: Engine, batch: _Batch, *, source: Source) -> dict[int, ItemOutcome]:
    n, m = len(batch.readings), len(batch.rejections)
    parts = [
        _Batch(batch.readings[: n // 2], batch.raws[: n // 2], batch.origins[: n // 2], batch.reading_index[: n // 2]),
        _Batch(batch.readings[n // 2 :], batch.raws[n // 2 :], batch.origins[n // 2 :], batch.reading_index[n // 2 :]),
        _Batch(rejections=batch.rejections[: m // 2], rejection_index=batch.rejection_index[: m // 2]),
        _Batch(rejections=batch.rejections[m // 2 :], rejection_index=batch.rejection_index[m // 2 :]),
    ]
    out: dict[int, ItemOutcome] = {}
    for part in parts:
        if part.size:
            out.update(_store(engine, part, source=source))
    return out


def ingest_items(
    engine: Engine,
    items: Sequence[Any],
    *,
    source: Source,
    origins: Sequence[str] | None = None,
    sites: Callable[[str], bool] | None = None,
    now_utc: datetime | None = None,
) -> list[ItemOutcome]:
    """Validate and store decoded readings (one transaction); one outcome per item, in order.

    Args:
        engine: The database.
        items: Decoded JSON values, one reading each.
        source: Where they came from ("mqtt", "http", "csv", "sim").
        origins: Per item, where it came from ("file.csv:12"), for the dead letters.
        sites: Whether a site exists (default: read the portfolio once).
        now_utc: The receipt time, for the future-timestamp check (default now).

    Raises:
        BatchTooLargeError: More than ``MAX_BATCH`` items.
        DatabaseUnavailableError: Nothing was stored; try again.
    """
    if len(items) > MAX_BATCH:
        raise BatchTooLargeError(len(items), MAX_BATCH)
    now = now_utc or datetime.now(UTC)
    site_exists = sites or readings_store.known_site_ids(engine).__contains__
    batch = _Batch()
    for i, item in enumerate(items):
        origin = origins[i] if origins is not None else f"{source} item {i}"
        batch.add(i, parse_item(item, now_utc=now, site_exists=site_exists, origin=origin), item, origin)
    if not batch.size:
        return []
    outcomes = _store(engine, batch, source=source)
    return [outcomes[i] for i in range(len(items))]


def ingest_body(
    engine: Engine, body: bytes, *, source: Source = "http", sites: Callable[[str], bool] | None = None
) -> list[ItemOutcome]:
    """Ingest a request body: a JSON array of readings, one reading object, or ``{"readings": [...]}``.

    Raises:
        BatchTooLargeError: More than ``MAX_BATCH`` readings (nothing stored).
        ValueError: Malformed JSON, or not a reading/array (dead-lettered whole, with the reason).
    """
    try:
        doc = decode_json(body)
    except ValueError as exc:
        readings_store.save_rejections(engine, [Rejection(raw_text(body), str(exc), f"{source} body")], source=source)
        raise
    if isinstance(doc, dict) and isinstance(doc.get("readings"), list):
        doc = doc["readings"]
    items = doc if isinstance(doc, list) else [doc]
    return ingest_items(engine, items, source=source, sites=sites)


# ---------------------------------------------------------------- MQTT


#: Called after each commit with every reading of the batch, its outcome, and the commit time.
CommitHook = Callable[[Sequence[tuple[Reading, ItemOutcome]], datetime], None]


class MessageWriter:
    """The listener's batch handler: validate every message of a batch and commit them together.

    Raises only when nothing could be stored (database unreachable), so the subscriber retries
    and does not acknowledge.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        root: str = TOPIC_ROOT,
        sites: Callable[[str], bool] | None = None,
        on_commit: CommitHook | None = None,
    ) -> None:
        self.engine = engine
        self.root = root
        self.sites = sites or SiteDirectory(engine)
        self.on_commit = on_commit
        self.summary = IngestSummary()

    def __call__(self, messages: Sequence[Message]) -> None:
        """Store one batch of messages; returns once committed."""
        batch = _Batch()
        index = 0
        # One directory look-up per site and batch, not per reading (it takes a lock).
        known: dict[str, bool] = {}

        def site_exists(site_id: str) -> bool:
            found = known.get(site_id)
            if found is None:
                found = known[site_id] = self.sites(site_id)
            return found

        for msg in messages:
            site_id, sensor_id = ids_from_topic(msg.topic, root=self.root)
            if site_id is None:
                reason = f"topic {msg.topic!r} is not {self.root}/sites/<site_id>/sensors/<sensor_id>"
                batch.add(index, Parsed(None, Rejection(raw_text(msg.payload), reason, msg.topic)), msg.payload)
                index += 1
                continue
            parsed = parse_payload(
                msg.payload,
                now_utc=msg.received_at_utc,
                site_exists=site_exists,
                origin=msg.topic,
                site_id=site_id,
                sensor_id=sensor_id,
                max_items=MAX_BATCH,
            )
            for p in parsed:
                # An item of a batch message is kept as its reading, rendered only if it conflicts.
                raw: Any = msg.payload if len(parsed) == 1 else p.reading
                batch.add(index, p, raw, msg.topic)
                index += 1
        outcomes = _store(self.engine, batch, source="mqtt") if batch.size else {}
        committed = datetime.now(UTC)
        ordered = [outcomes[i] for i in range(index)]
        self.summary.add(ordered)
        if self.on_commit is not None:
            self.on_commit(
                [(r, outcomes[i]) for r, i in zip(batch.readings, batch.reading_index, strict=True)], committed
            )


def run_listener(
    engine: Engine,
    mqtt_url: str,
    *,
    stop: threading.Event,
    client_id: str = "sitewatch-ingest",
    root: str = TOPIC_ROOT,
    batch_size: int = 2000,
    linger_s: float = 0.05,
    receive_maximum: int | None = None,
    on_commit: CommitHook | None = None,
    ready: threading.Event | None = None,
) -> tuple[SubscriberStats, IngestSummary]:
    """Listen to ``<root>/sites/+/sensors/+`` and store what arrives until ``stop`` is set.

    Args:
        engine: The database (migrated).
        mqtt_url: ``mqtt://host:port``.
        stop: Set it to stop cleanly (what arrived is stored and acknowledged first).
        client_id: The persistent session's id: keep it fixed per deployment.
        root: Topic root.
        batch_size: Most messages per transaction.
        linger_s: Longest wait for a batch to fill.
        receive_maximum: Most unacknowledged messages in flight, and so most redelivered after
            a crash (default two batches).
        on_commit: Called after each commit (benchmarks measure latency with it).
        ready: Set once the subscription is active.
    """
    writer = MessageWriter(engine, root=root, on_commit=on_commit)
    subscriber = MqttSubscriber(
        BrokerAddress.parse(mqtt_url),
        subscription_for(root),
        writer,
        client_id=client_id,
        batch_size=batch_size,
        linger_s=linger_s,
        receive_maximum=receive_maximum,
    )
    if ready is not None:
        signal = ready

        def _announce() -> None:
            if subscriber.wait_subscribed(3600):
                signal.set()

        threading.Thread(target=_announce, name="listener-ready", daemon=True).start()
    stats = subscriber.run(stop)
    s = writer.summary
    logger.info("listener stored %s readings (%s duplicate, %s rejected)", s.accepted, s.duplicate, s.rejected)
    return stats, writer.summary


# ---------------------------------------------------------------- CSV


#: Columns a readings CSV must have (``timestamp`` may stand for ``observed_at``).
CSV_COLUMNS = ("site_id", "sensor_id", "kind", "observed_at", "value", "unit")


def _csv_value(text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _csv_rows(path: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    try:
        handle = path.open(encoding="utf-8", newline="")
    except UnicodeDecodeError as exc:  # pragma: no cover - open() does not decode
        raise CsvInvalidError(f"{path}: not UTF-8 text") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise CsvInvalidError(f"{path}: empty file, expected a header {','.join(CSV_COLUMNS)}") from None
        except UnicodeDecodeError as exc:
            raise CsvInvalidError(f"{path}: not UTF-8 text ({exc.reason})") from None
        have = set(header)
        missing = [c for c in CSV_COLUMNS if c not in have and not (c == "observed_at" and "timestamp" in have)]
        if missing:
            raise CsvInvalidError(f"{path}: missing column(s) {', '.join(missing)}; header is {','.join(header)}")
        try:
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                buffer = io.StringIO()
                csv.writer(buffer, lineterminator="").writerow(row)
                item: dict[str, Any] = {}
                for name, cell in zip(header, row, strict=False):
                    item[name] = _csv_value(cell) if name == "value" else (cell.strip() or None)
                if len(row) != len(header):
                    item["_columns"] = len(row)
                yield reader.line_num, buffer.getvalue(), item
        except UnicodeDecodeError as exc:
            raise CsvInvalidError(f"{path}: not UTF-8 text ({exc.reason})") from None


def import_csv(engine: Engine, path: Path, *, batch_size: int = MAX_BATCH) -> IngestSummary:
    """Import a readings CSV (header ``site_id,sensor_id,kind,observed_at,value,unit``) in batches.

    Each bad row is dead-lettered with its line number; the good rows are stored. Re-importing
    a file stores nothing new (every row is a duplicate).

    Raises:
        CsvInvalidError: The file has no usable header or is not UTF-8 text (nothing stored).
        FileNotFoundError: No such file.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    summary = IngestSummary()
    sites = SiteDirectory(engine)
    chunk: list[tuple[int, str, dict[str, Any]]] = []

    def flush() -> None:
        items: list[Any] = []
        origins: list[str] = []
        for line, raw, item in chunk:
            columns = item.pop("_columns", None)
            items.append(raw if columns is not None else item)
            origins.append(f"{path.name}:{line}")
        outcomes = ingest_items(engine, items, source="csv", origins=origins, sites=sites)
        # A row with the wrong number of cells was passed as its text, so it is rejected as
        # "not a JSON object"; say what is really wrong in the summary log.
        summary.add(outcomes)
        chunk.clear()

    for row in _csv_rows(path):
        chunk.append(row)
        if len(chunk) >= batch_size:
            flush()
    if chunk:
        flush()
    logger.info(
        "imported %s: %s accepted, %s duplicate, %s rejected",
        path,
        summary.accepted,
        summary.duplicate,
        summary.rejected,
    )
    return summary


# ---------------------------------------------------------------- features


def site_daily_features(
    engine: Engine,
    site_id: str,
    start: date,
    end: date,
    *,
    baseline_days: int = 28,
    silence_hours: float = 24.0,
    tz: tzinfo | None = None,
    kinds: Iterable[str] | None = None,
) -> list[SiteDayFeatures]:
    """Daily activity features of one site over its local days ``start``..``end``, from its stored readings.

    Args:
        engine: The database.
        site_id: The site.
        start: First local day.
        end: Last local day (inclusive).
        baseline_days: Length of the activity baseline (days).
        silence_hours: Hours without a reading after which a sensor or the site is silent.
        tz: The site's time zone; by default :func:`iot.sitetime.site_timezone` of the stored
            site (UTC, with a warning, for readings of a site no longer in the portfolio).
        kinds: Read only these kinds (the others' metrics read as gaps); all by default.

    Raises:
        SiteTimezoneError: The site's ``properties.timezone`` names no zone.
    """
    if tz is None:
        try:
            tz = site_timezone(repo.get_site(engine, site_id))
        except SiteNotFoundError:
            logger.warning("site %s is not in the portfolio: UTC days", site_id, extra={"site_id": site_id})
            tz = UTC
    window_start = local_midnight_utc(start - timedelta(days=baseline_days), tz)
    window_end = local_midnight_utc(end + timedelta(days=1), tz)
    history = readings_store.last_reading_per_sensor(engine, site_id, before_utc=window_start)
    rows = readings_store.list_readings(engine, site_id, start_utc=window_start, end_utc=window_end, kinds=kinds)
    return daily_features(
        [*history, *rows],
        site_id=site_id,
        start=start,
        end=end,
        baseline_days=baseline_days,
        silence_hours=silence_hours,
        tz=tz,
    )


#: Days of sensor work levels against a full year's reference the refresh reads (:func:`site_work`).
SENSOR_DAYS = 180
#: The trailing window of that reference (:func:`iot.features.work_levels`).
REFERENCE_DAYS = 365


def site_work(
    engine: Engine,
    site_id: str,
    end: date,
    *,
    days: int = SENSOR_DAYS,
    reference_days: int = REFERENCE_DAYS,
    with_history: bool = False,
) -> list[SiteWork]:
    """The site's daily work levels over the ``days`` local days up to ``end``, from its stored readings.

    What the progress stage gives the stall flag as its second witness
    (:func:`models.progress.idle_evidence`); the levels compare each day with the site's working
    days of the ``reference_days`` before it (:func:`iot.features.work_levels`). Empty for a site
    without readings.

    With ``with_history`` the reference days read are returned too, each compared with the part
    of the reference read before it (the first weeks have none: None). At no extra read, this
    dates a stop up to ``days + reference_days`` back; a longer one reads as idle that long.

    Raises:
        SiteTimezoneError: The site's ``properties.timezone`` names no zone.
    """
    first = end - timedelta(days=days - 1)
    # Only the activity kinds: a year and a half of every reading is the cost of this stage.
    features = site_daily_features(
        engine, site_id, first - timedelta(days=reference_days), end, kinds=ACTIVITY_KINDS.values()
    )
    if not any(f.readings for f in features):
        return []
    return work_levels(features, start=None if with_history else first, reference_days=reference_days)
