"""Sensor readings and dead letters: batched, idempotent writes and the reads that features need.

Writes use ``INSERT .. ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL dialect constructs) on
the (site_id, sensor_id, observed_at) identity, as multi-row inserts, so a replayed batch is a
no-op and a batch costs a handful of round trips. One call is one transaction: the readings and
the batch's dead letters are committed together or not at all.

The records passed in are matched structurally (:class:`ReadingLike`, :class:`RejectionLike`),
so ``store`` does not import ``iot``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from store.errors import DatabaseUnavailableError, StoreError
from store.iot_schema import ReadingRow, RejectedReadingRow
from store.schema import SiteRow, utcnow

logger = logging.getLogger(__name__)

#: Identities looked up per SELECT when checking replays against stored values.
_LOOKUP_CHUNK = 500
#: Column widths of the dead-letter table (longer text is cut, never refused).
_ORIGIN_CHARS = 512
_RAW_CHARS = 65_536


class ReadingsRefusedError(StoreError, ValueError):
    """The database refused a batch for its content (not for being unreachable)."""


class ReadingLike(Protocol):
    """What a reading passed to :func:`save_batch` must offer (``iot.readings.Reading`` does)."""

    @property
    def site_id(self) -> str: ...  # noqa: D102
    @property
    def sensor_id(self) -> str: ...  # noqa: D102
    @property
    def kind(self) -> str: ...  # noqa: D102
    @property
    def observed_at_utc(self) -> datetime: ...  # noqa: D102
    @property
    def value(self) -> float: ...  # noqa: D102
    @property
    def unit(self) -> str: ...  # noqa: D102


class RejectionLike(Protocol):
    """What a rejection passed to :func:`save_batch` must offer (``iot.readings.Rejection`` does)."""

    @property
    def raw(self) -> str: ...  # noqa: D102
    @property
    def reason(self) -> str: ...  # noqa: D102
    @property
    def origin(self) -> str: ...  # noqa: D102
    @property
    def site_id(self) -> str | None: ...  # noqa: D102
    @property
    def sensor_id(self) -> str | None: ...  # noqa: D102


class ReadingStatus(StrEnum):
    """What happened to one reading of a batch."""

    ACCEPTED = "accepted"  #: stored now
    DUPLICATE = "duplicate"  #: the same reading was already stored (a replay): nothing to do
    CONFLICT = "conflict"  #: another value is stored for the same identity: dead-lettered


@dataclass(frozen=True, slots=True)
class StoredReading:
    """One stored reading (value in the kind's canonical unit)."""

    site_id: str
    sensor_id: str
    kind: str
    observed_at_utc: datetime
    value: float
    unit: str
    source: str
    received_at_utc: datetime


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected input, as an operator lists it."""

    id: int
    received_at_utc: datetime
    source: str
    origin: str
    reason: str
    raw: str
    site_id: str | None
    sensor_id: str | None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Outcome of :func:`save_batch`: one status per reading, in input order."""

    statuses: list[ReadingStatus]
    #: The reason per conflicting reading (index into the batch), as dead-lettered.
    conflicts: dict[int, str]
    rejected: int

    def count(self, status: ReadingStatus) -> int:
        """How many readings got this status."""
        return sum(1 for s in self.statuses if s is status)


Identity = tuple[str, str, datetime]


def _identity(r: ReadingLike) -> Identity:
    return (r.site_id, r.sensor_id, r.observed_at_utc)


#: PostgreSQL: one statement per batch, each column sent as one array literal that the server
#: parses. A multi-row VALUES insert spends most of its time in psycopg rewriting thousands of
#: placeholders, and adapting Python lists element by element (SQLAlchemy's array processing, or
#: psycopg's list dumper) costs more than the insert itself; a joined string costs a C loop.
_UNNEST_INSERT = """
    INSERT INTO readings (site_id, sensor_id, kind, observed_at, value, unit, source, received_at)
    SELECT s, n, k, o, v, u, %(source)s, %(received_at)s
    FROM unnest(%(site_ids)s::text[], %(sensor_ids)s::text[], %(kinds)s::text[],
                %(observed_ats)s::timestamptz[], %(vals)s::float8[], %(units)s::text[]) AS t(s, n, k, o, v, u)
    ON CONFLICT (site_id, sensor_id, observed_at) DO NOTHING
    RETURNING site_id, sensor_id, observed_at
"""


def _quoted(text: str) -> str:
    """One element of a PostgreSQL array literal, double-quoted (so ``NULL`` stays a string)."""
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def pg_text_array(items: Iterable[str]) -> str:
    """A PostgreSQL array literal of strings: ``{"a","b"}``.

    Elements are always quoted, so commas, braces, blanks and the word NULL survive; NUL
    characters cannot be sent to PostgreSQL at all and are refused by the server.
    """
    return "{" + ",".join(map(_quoted, items)) + "}"


def _insert_unnest(conn: Connection, readings: Sequence[ReadingLike], *, source: str, at: datetime) -> set[Identity]:
    params = {
        "site_ids": pg_text_array([r.site_id for r in readings]),
        "sensor_ids": pg_text_array([r.sensor_id for r in readings]),
        "kinds": pg_text_array([r.kind for r in readings]),
        "observed_ats": pg_text_array([r.observed_at_utc.isoformat() for r in readings]),
        # repr() round-trips a float exactly; PostgreSQL reads its "inf" and "nan" too.
        "vals": "{" + ",".join([repr(float(r.value)) for r in readings]) + "}",
        "units": pg_text_array([r.unit for r in readings]),
        "source": source,
        "received_at": at.astimezone(UTC),
    }
    rows = conn.exec_driver_sql(_UNNEST_INSERT, params).fetchall()  # one fetch, not one per row
    # Aware datetimes compare and hash by instant, whatever zone the driver returns them in.
    return {(s, n, o) for s, n, o in rows}


#: SQLite: rows per INSERT statement (8 parameters each, under SQLite's 32 766-variable limit).
_SQLITE_ROWS = 2000


@functools.lru_cache(maxsize=8)
def _sqlite_insert_sql(rows: int) -> str:
    values = ",".join(["(?,?,?,?,?,?,?,?)"] * rows)
    return (
        "INSERT INTO readings (site_id, sensor_id, kind, observed_at, value, unit, source, received_at) "
        f"VALUES {values} ON CONFLICT (site_id, sensor_id, observed_at) DO NOTHING "
        "RETURNING site_id, sensor_id, observed_at"
    )


def sqlite_datetime(value: datetime) -> str:
    """An aware datetime as ``UTCDateTime`` stores it in SQLite: UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``.

    The same text SQLAlchemy's SQLite ``DateTime`` writes (a test holds them equal), so rows
    written through the driver and through the ORM compare and conflict alike.
    """
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}"


def _insert_sqlite(conn: Connection, readings: Sequence[ReadingLike], *, source: str, at: datetime) -> set[Identity]:
    """Insert with multi-row VALUES through the driver; returns the identities inserted.

    SQLAlchemy's per-row parameter processing and statement compilation cost more than SQLite's
    own work, and the driver's ``executemany`` cannot return rows.
    """
    received = sqlite_datetime(at)
    inserted: set[Identity] = set()
    for lo in range(0, len(readings), _SQLITE_ROWS):
        chunk = readings[lo : lo + _SQLITE_ROWS]
        params: list[Any] = []
        # RETURNING gives back the stored text of observed_at: map it to the identity directly.
        by_text: dict[tuple[str, str, str], Identity] = {}
        for r in chunk:
            stamp = sqlite_datetime(r.observed_at_utc)
            by_text[(r.site_id, r.sensor_id, stamp)] = (r.site_id, r.sensor_id, r.observed_at_utc)
            params += (r.site_id, r.sensor_id, r.kind, stamp, r.value, r.unit, source, received)
        result = conn.exec_driver_sql(_sqlite_insert_sql(len(chunk)), tuple(params))
        inserted.update(by_text[(s, n, o)] for s, n, o in result.fetchall())
    return inserted


def _same(kind_a: str, value_a: float, kind_b: str, value_b: float) -> bool:
    return kind_a == kind_b and math.isclose(value_a, value_b, rel_tol=1e-9, abs_tol=1e-12)


def _fit(text: str, limit: int) -> str:
    return text[:limit].replace("\x00", "\\u0000")


def save_batch(
    engine: Engine,
    readings: Sequence[ReadingLike],
    rejections: Sequence[RejectionLike] = (),
    *,
    source: str,
    raws: Sequence[str] | None = None,
    origins: Sequence[str] | None = None,
    received_at: datetime | None = None,
) -> BatchResult:
    """Store a batch of readings and dead letters in one transaction; replays are no-ops.

    A reading whose identity is stored (or appears earlier in the batch) with the same kind
    and value is a duplicate. With another value it is a conflict: the first value stays and
    the newcomer is dead-lettered with both values in the reason.

    Args:
        engine: The database.
        readings: Validated readings (values in canonical units, UTC times).
        rejections: Input that failed validation, to dead-letter.
        source: "mqtt", "http", "csv" or "sim".
        raws: The raw text of each reading as received (aligned with ``readings``), kept
            when it turns out to conflict; a JSON rendering is used when absent.
        origins: Where each reading came from (aligned with ``readings``), for conflicts.
        received_at: The batch's receipt time, UTC (default now).

    Returns:
        One status per reading, in order.

    Raises:
        DatabaseUnavailableError: The database cannot be reached; nothing was written.
        ReadingsRefusedError: The database refused the content; nothing was written.
    """
    at = received_at or utcnow()
    try:
        with engine.begin() as conn:
            result = _save(conn, readings, rejections, source=source, raws=raws, origins=origins, at=at)
    except (OperationalError, InterfaceError, DisconnectionError) as exc:
        raise DatabaseUnavailableError(f"cannot write readings: {getattr(exc, 'orig', exc)}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailableError(f"cannot write readings: {exc.orig}") from exc
        raise ReadingsRefusedError(f"database refused the batch: {exc.orig}") from exc
    logger.debug(
        "saved batch: %s accepted, %s duplicate, %s conflict, %s rejected",
        result.count(ReadingStatus.ACCEPTED),
        result.count(ReadingStatus.DUPLICATE),
        result.count(ReadingStatus.CONFLICT),
        result.rejected,
    )
    return result


def _save(
    conn: Connection,
    readings: Sequence[ReadingLike],
    rejections: Sequence[RejectionLike],
    *,
    source: str,
    raws: Sequence[str] | None,
    origins: Sequence[str] | None,
    at: datetime,
) -> BatchResult:
    # Stage 1: the first occurrence of each identity is inserted; later ones are compared to it.
    first: dict[Identity, int] = {}
    for i, r in enumerate(readings):
        if r.observed_at_utc.tzinfo is None:  # the driver-level inserts would read it as local time
            raise ReadingsRefusedError(f"observed_at {r.observed_at_utc.isoformat()} has no time zone")
        first.setdefault(_identity(r), i)
    inserted: set[Identity] = set()
    if first:
        unique = [readings[i] for i in first.values()]
        if conn.dialect.name == "postgresql":
            inserted = _insert_unnest(conn, unique, source=source, at=at)
        elif conn.dialect.name == "sqlite":
            inserted = _insert_sqlite(conn, unique, source=source, at=at)
        else:  # pragma: no cover - only the two backends are supported
            raise ReadingsRefusedError(f"unsupported database dialect {conn.dialect.name!r}")

    # Stage 2: what is stored for identities that were there already (replays or conflicts).
    kept: dict[Identity, tuple[str, float]] = {k: (readings[i].kind, readings[i].value) for k, i in first.items()}
    existing = [k for k in first if k not in inserted]
    if existing:
        kept.update(_stored_values(conn, existing))

    # Stage 3: one status per reading; conflicts become dead letters with both values.
    statuses: list[ReadingStatus] = []
    conflicts: dict[int, str] = {}
    dead: list[dict[str, Any]] = []
    for i, r in enumerate(readings):
        key = _identity(r)
        if first[key] == i and key in inserted:
            statuses.append(ReadingStatus.ACCEPTED)
            continue
        kind, value = kept[key]
        if _same(kind, value, r.kind, r.value):
            statuses.append(ReadingStatus.DUPLICATE)
            continue
        reason = (
            f"conflict: {kind} {value:g} {r.unit} is stored for sensor {r.sensor_id!r} of site {r.site_id!r} "
            f"at {r.observed_at_utc.isoformat()}; this reading says {r.kind} {r.value:g} {r.unit}"
        )
        statuses.append(ReadingStatus.CONFLICT)
        conflicts[i] = reason
        raw = raws[i] if raws is not None else json.dumps(_reading_json(r), separators=(",", ":"))
        origin = origins[i] if origins is not None else ""
        dead.append(_dead_row(raw, reason, origin, r.site_id, r.sensor_id, source, at))
    dead.extend(_dead_row(x.raw, x.reason, x.origin, x.site_id, x.sensor_id, source, at) for x in rejections)
    if dead:
        conn.execute(insert(RejectedReadingRow), dead)
    return BatchResult(statuses, conflicts, len(dead))


def _stored_values(conn: Connection, identities: Sequence[Identity]) -> dict[Identity, tuple[str, float]]:
    """(kind, value) stored for these identities: one indexed range scan per site and chunk."""
    by_site: dict[str, list[Identity]] = {}
    for key in identities:
        by_site.setdefault(key[0], []).append(key)
    wanted = set(identities)
    found: dict[Identity, tuple[str, float]] = {}
    for site_id, keys in by_site.items():
        keys.sort(key=lambda k: k[2])
        for lo in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[lo : lo + _LOOKUP_CHUNK]
            q = select(ReadingRow.sensor_id, ReadingRow.observed_at, ReadingRow.kind, ReadingRow.value).where(
                ReadingRow.site_id == site_id,
                ReadingRow.observed_at >= chunk[0][2],
                ReadingRow.observed_at <= chunk[-1][2],
                ReadingRow.sensor_id.in_({k[1] for k in chunk}),
            )
            for sensor_id, observed_at, kind, value in conn.execute(q):
                key = (site_id, sensor_id, observed_at)
                if key in wanted:
                    found[key] = (kind, value)
    return found


def _reading_json(r: ReadingLike) -> dict[str, Any]:
    return {
        "site_id": r.site_id,
        "sensor_id": r.sensor_id,
        "kind": r.kind,
        "observed_at": r.observed_at_utc.isoformat(),
        "value": r.value,
        "unit": r.unit,
    }


def _dead_row(
    raw: str, reason: str, origin: str, site_id: str | None, sensor_id: str | None, source: str, at: datetime
) -> dict[str, Any]:
    return {
        "received_at": at,
        "source": source,
        "origin": _fit(origin, _ORIGIN_CHARS),
        "reason": _fit(reason, _RAW_CHARS),
        "raw": _fit(raw, _RAW_CHARS),
        "site_id": site_id[:64] if site_id else None,
        "sensor_id": sensor_id[:64] if sensor_id else None,
    }


def save_rejections(engine: Engine, rejections: Sequence[RejectionLike], *, source: str) -> int:
    """Dead-letter input that never became readings (e.g. a malformed request body)."""
    return save_batch(engine, (), rejections, source=source).rejected


# ---------------------------------------------------------------- reads


def known_site_ids(engine: Engine) -> set[str]:
    """Ids of every site in the portfolio."""
    try:
        with Session(engine) as session:
            return set(session.scalars(select(SiteRow.id)))
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"cannot reach the database: {exc.orig}") from exc


def list_readings(
    engine: Engine,
    site_id: str,
    *,
    start_utc: datetime | None = None,
    end_utc: datetime | None = None,
    kinds: Iterable[str] | None = None,
) -> list[StoredReading]:
    """A site's readings with ``start_utc <= observed_at < end_utc``, in time order."""
    stmt = select(ReadingRow).where(ReadingRow.site_id == site_id)
    if start_utc is not None:
        stmt = stmt.where(ReadingRow.observed_at >= start_utc)
    if end_utc is not None:
        stmt = stmt.where(ReadingRow.observed_at < end_utc)
    if kinds is not None:
        stmt = stmt.where(ReadingRow.kind.in_(list(kinds)))
    stmt = stmt.order_by(ReadingRow.observed_at, ReadingRow.sensor_id)
    with Session(engine) as session:
        return [
            StoredReading(r.site_id, r.sensor_id, r.kind, r.observed_at, r.value, r.unit, r.source, r.received_at)
            for r in session.scalars(stmt)
        ]


def count_readings(engine: Engine, *, site_id: str | None = None, source: str | None = None) -> int:
    """How many readings are stored (optionally of one site or source)."""
    stmt = select(func.count()).select_from(ReadingRow)
    if site_id is not None:
        stmt = stmt.where(ReadingRow.site_id == site_id)
    if source is not None:
        stmt = stmt.where(ReadingRow.source == source)
    with Session(engine) as session:
        return int(session.scalar(stmt) or 0)


def list_rejected(
    engine: Engine,
    *,
    limit: int = 100,
    before_id: int | None = None,
    source: str | None = None,
    site_id: str | None = None,
) -> list[DeadLetter]:
    """Dead letters, newest first; page with ``before_id`` (the last id of the previous page)."""
    stmt = select(RejectedReadingRow).order_by(RejectedReadingRow.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(RejectedReadingRow.id < before_id)
    if source is not None:
        stmt = stmt.where(RejectedReadingRow.source == source)
    if site_id is not None:
        stmt = stmt.where(RejectedReadingRow.site_id == site_id)
    with Session(engine) as session:
        return [
            DeadLetter(r.id, r.received_at, r.source, r.origin, r.reason, r.raw, r.site_id, r.sensor_id)
            for r in session.scalars(stmt)
        ]


def count_rejected(engine: Engine, *, source: str | None = None) -> int:
    """How many dead letters are stored (optionally from one source)."""
    stmt = select(func.count()).select_from(RejectedReadingRow)
    if source is not None:
        stmt = stmt.where(RejectedReadingRow.source == source)
    with Session(engine) as session:
        return int(session.scalar(stmt) or 0)


def last_reading_per_sensor(engine: Engine, site_id: str, *, before_utc: datetime) -> list[StoredReading]:
    """Each sensor's latest reading strictly before ``before_utc`` (for silence and sensor inventory)."""
    latest = (
        select(ReadingRow.sensor_id, func.max(ReadingRow.observed_at).label("at"))
        .where(ReadingRow.site_id == site_id, ReadingRow.observed_at < before_utc)
        .group_by(ReadingRow.sensor_id)
        .subquery()
    )
    stmt = (
        select(ReadingRow)
        .join(latest, (ReadingRow.sensor_id == latest.c.sensor_id) & (ReadingRow.observed_at == latest.c.at))
        .where(ReadingRow.site_id == site_id)
        .order_by(ReadingRow.sensor_id)
    )
    with Session(engine) as session:
        return [
            StoredReading(r.site_id, r.sensor_id, r.kind, r.observed_at, r.value, r.unit, r.source, r.received_at)
            for r in session.scalars(stmt)
        ]
