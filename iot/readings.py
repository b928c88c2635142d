"""The reading record, and validation of raw readings from MQTT, HTTP and CSV (pure).

A raw reading is a JSON object::

    {"site_id": "de-rgb-hall", "sensor_id": "eq-crane-1", "kind": "equipment_runtime_h",
     "observed_at": "2026-10-31T14:00:00+01:00", "value": 42, "unit": "min"}

``timestamp`` is accepted for ``observed_at``. Unknown extra fields are ignored. On MQTT the
topic ``<root>/sites/<site_id>/sensors/<sensor_id>`` supplies the site and sensor; the payload
may repeat them but must then agree.

Identity is (site_id, sensor_id, observed_at): a sensor reports one value per instant, so a
second reading with the same identity is a replay (no-op) or, with another value, a conflict.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from iot.errors import ReadingInvalidError, UnitInvalidError, UnknownKindError
from iot.kinds import kind_for

logger = logging.getLogger(__name__)

#: Readings stamped further ahead than this of the receiver's clock are rejected.
MAX_FUTURE = timedelta(minutes=5)
#: Ids are what a topic level may hold safely: no "/", "+", "#" or whitespace.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")
#: Dead-letter payloads are cut to this many characters.
MAX_RAW_CHARS = 65_536


@dataclass(frozen=True, slots=True)
class Reading:
    """One validated sensor reading, in its kind's canonical unit.

    Attributes:
        site_id: The site the sensor is on.
        sensor_id: The sensor, unique within its site.
        kind: A registered kind name (see :mod:`iot.kinds`).
        observed_at_utc: When the value was measured, timezone-aware UTC.
        value: The value in ``unit``, finite and inside the kind's physical range.
        unit: The kind's canonical unit.
    """

    site_id: str
    sensor_id: str
    kind: str
    observed_at_utc: datetime
    value: float
    unit: str

    @property
    def identity(self) -> tuple[str, str, datetime]:
        """(site_id, sensor_id, observed_at_utc): what makes two readings the same one."""
        return (self.site_id, self.sensor_id, self.observed_at_utc)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Input that was not stored, kept with the reason for the dead-letter table.

    Attributes:
        raw: The input as received (one item of a batch), cut to ``MAX_RAW_CHARS``.
        reason: Every problem found, separated by "; ".
        origin: Where it came from: an MQTT topic, ``file.csv:12``, ``http item 3``.
        site_id: The site, when it could be read from the input.
        sensor_id: The sensor, when it could be read from the input.
    """

    raw: str
    reason: str
    origin: str = ""
    site_id: str | None = None
    sensor_id: str | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    """The outcome of validating one raw item: exactly one of ``reading`` and ``rejection``."""

    reading: Reading | None
    rejection: Rejection | None


SiteCheck = Callable[[str], bool]


def raw_text(item: Any) -> str:
    """A raw item as dead-letter text: strings as they are, anything else as compact JSON."""
    if isinstance(item, str | bytes):
        text = item.decode("utf-8", errors="replace") if isinstance(item, bytes) else item
    else:
        text = json.dumps(item, separators=(",", ":"), default=str, allow_nan=True)
    # PostgreSQL text cannot hold NUL characters; keep them visible instead.
    return text[:MAX_RAW_CHARS].replace("\x00", "\\u0000")


def parse_timestamp(raw: Any) -> datetime:
    """An ISO 8601 timestamp with a UTC offset, as an aware UTC datetime.

    Raises:
        ValueError: Not a string, not ISO 8601, or without an offset (naive).
    """
    if not isinstance(raw, str):
        raise ValueError(f"observed_at must be an ISO 8601 string, not {type(raw).__name__}")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"observed_at {raw!r} is not an ISO 8601 timestamp") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"observed_at {raw!r} has no UTC offset (naive timestamps are ambiguous)")
    return when.astimezone(UTC)


def _text_id(item: Mapping[str, Any], field: str, given: str | None, reasons: list[str]) -> str | None:
    raw = item.get(field)
    rule = "must be 1-64 letters, digits or ._:@- (not starting with a symbol)"
    if given is not None:
        if not _ID.match(given):
            reasons.append(f"{field} {given!r} in the topic {rule}")
            return None
        if raw is not None and raw != given:
            reasons.append(f"{field} {raw!r} disagrees with the topic's {given!r}")
        return given
    if raw is None:
        reasons.append(f"{field} is missing")
        return None
    if not isinstance(raw, str) or not _ID.match(raw):
        reasons.append(f"{field} {raw!r} {rule}")
        return None
    return raw


def _number(raw: Any, reasons: list[str]) -> float | None:
    if raw is None:
        reasons.append("value is missing")
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        reasons.append(f"value {raw!r} must be a number")
        return None
    value = float(raw)
    if not math.isfinite(value):
        reasons.append(f"value {raw!r} is not finite (NaN and infinity are not measurements)")
        return None
    return value


def validate_reading(
    item: Any,
    *,
    now_utc: datetime,
    site_exists: SiteCheck,
    site_id: str | None = None,
    sensor_id: str | None = None,
) -> Reading:
    """Check one raw reading and convert it to the canonical unit.

    Every problem is collected before failing, so a dead letter names all of them.

    Args:
        item: The decoded JSON object (a mapping); ``value`` must be a number.
        now_utc: The receiver's clock, timezone-aware; readings more than ``MAX_FUTURE``
            ahead of it are rejected. Late and out-of-order readings are accepted.
        site_exists: Whether a site id is in the portfolio.
        site_id: The site named by the MQTT topic, if any.
        sensor_id: The sensor named by the MQTT topic, if any.

    Returns:
        The reading, value in the kind's canonical unit.

    Raises:
        ReadingInvalidError: With every reason the reading cannot be stored.
    """
    if not isinstance(item, Mapping):
        raise ReadingInvalidError([f"a reading must be a JSON object, not {type(item).__name__}"])
    reasons: list[str] = []
    site = _text_id(item, "site_id", site_id, reasons)
    sensor = _text_id(item, "sensor_id", sensor_id, reasons)
    if site is not None and not site_exists(site):
        reasons.append(f"unknown site {site!r}")

    # Time: exactly one of observed_at / timestamp, with an offset, not in the future.
    observed_at: datetime | None = None
    stamps = [k for k in ("observed_at", "timestamp") if item.get(k) is not None]
    if not stamps:
        reasons.append("observed_at is missing")
    elif len(stamps) == 2 and item["observed_at"] != item["timestamp"]:
        reasons.append("observed_at and timestamp disagree; send one of them")
    else:
        try:
            observed_at = parse_timestamp(item[stamps[0]])
        except ValueError as exc:
            reasons.append(str(exc))
        else:
            if observed_at - now_utc > MAX_FUTURE:
                ahead = (observed_at - now_utc).total_seconds()
                reasons.append(f"observed_at {observed_at.isoformat()} is {ahead:.0f} s in the future (limit 300 s)")

    # Kind, unit, value: convert first, then check the physical range in canonical units.
    kind_name = item.get("kind")
    value = _number(item.get("value"), reasons)
    unit = item.get("unit")
    canonical: float | None = None
    kind = None
    if not isinstance(kind_name, str):
        reasons.append("kind is missing" if kind_name is None else f"kind {kind_name!r} must be a string")
    else:
        try:
            kind = kind_for(kind_name)
        except UnknownKindError as exc:
            reasons.append(str(exc))
    if kind is not None:
        if unit is None:
            reasons.append(f"unit is missing (expected {kind.canonical_unit!r} or a convertible unit)")
        elif not isinstance(unit, str):
            reasons.append(f"unit {unit!r} must be a string")
        elif value is not None:
            try:
                canonical = kind.to_canonical(value, unit)
            except UnitInvalidError as exc:
                reasons.append(str(exc))
            else:
                if not kind.minimum <= canonical <= kind.maximum:
                    reasons.append(
                        f"value {canonical:g} {kind.canonical_unit} is outside the physical range "
                        f"[{kind.minimum:g}, {kind.maximum:g}] of {kind.name}"
                    )
    if reasons:
        raise ReadingInvalidError(reasons)
    # Every branch that leaves one of these None appended a reason above.
    if site is None or sensor is None or observed_at is None or kind is None or canonical is None:
        raise ReadingInvalidError(["incomplete reading"])
    return Reading(site, sensor, kind.name, observed_at, canonical, kind.canonical_unit)


def parse_item(
    item: Any,
    *,
    now_utc: datetime,
    site_exists: SiteCheck,
    origin: str = "",
    site_id: str | None = None,
    sensor_id: str | None = None,
) -> Parsed:
    """Validate one decoded item, returning the reading or its rejection (never raises)."""
    try:
        reading = validate_reading(item, now_utc=now_utc, site_exists=site_exists, site_id=site_id, sensor_id=sensor_id)
    except ReadingInvalidError as exc:
        site = item.get("site_id") if isinstance(item, Mapping) else None
        sensor = item.get("sensor_id") if isinstance(item, Mapping) else None
        return Parsed(
            None,
            Rejection(
                raw_text(item),
                str(exc),
                origin,
                _clip_id(site_id or site),
                _clip_id(sensor_id or sensor),
            ),
        )
    return Parsed(reading, None)


def _clip_id(raw: Any) -> str | None:
    return raw[:64] if isinstance(raw, str) and raw else None


def decode_json(payload: bytes | str) -> Any:
    """Decode a JSON document; ``NaN`` and ``Infinity`` decode to floats so validation can name them.

    Raises:
        ValueError: Not UTF-8 or not JSON, with the position.
    """
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    except UnicodeDecodeError as exc:
        raise ValueError(f"payload is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def parse_payload(
    payload: bytes | str,
    *,
    now_utc: datetime,
    site_exists: SiteCheck,
    origin: str = "",
    site_id: str | None = None,
    sensor_id: str | None = None,
    max_items: int = 5000,
) -> list[Parsed]:
    """Validate one message: a JSON object (one reading) or an array of them (a batch).

    A malformed or oversized message is one rejection holding the whole payload; in a batch
    each bad item is its own rejection and the good items are kept.
    """
    try:
        doc = decode_json(payload)
    except ValueError as exc:
        return [Parsed(None, Rejection(raw_text(payload), str(exc), origin, site_id, sensor_id))]
    items: Iterable[Any]
    if isinstance(doc, list):
        if len(doc) > max_items:
            reason = f"batch of {len(doc)} readings exceeds the limit of {max_items}"
            return [Parsed(None, Rejection(raw_text(payload), reason, origin, site_id, sensor_id))]
        items = doc
    else:
        items = [doc]
    return [
        parse_item(item, now_utc=now_utc, site_exists=site_exists, origin=origin, site_id=site_id, sensor_id=sensor_id)
        for item in items
    ]


def reading_payload(reading: Reading) -> dict[str, Any]:
    """A reading as the JSON object the ingestion path accepts (round-trips through validation)."""
    return {
        "site_id": reading.site_id,
        "sensor_id": reading.sensor_id,
        "kind": reading.kind,
        "observed_at": reading.observed_at_utc.isoformat(),
        "value": reading.value,
        "unit": reading.unit,
    }


# ---------------------------------------------------------------- topics

#: Default root of the topic tree: ``sitewatch/sites/<site_id>/sensors/<sensor_id>``.
TOPIC_ROOT = "sitewatch"


def topic_for(site_id: str, sensor_id: str, *, root: str = TOPIC_ROOT) -> str:
    """The topic a sensor publishes to."""
    return f"{root}/sites/{site_id}/sensors/{sensor_id}"


def subscription_for(root: str = TOPIC_ROOT) -> str:
    """The wildcard subscription covering every site and sensor under ``root``."""
    return f"{root}/sites/+/sensors/+"


def ids_from_topic(topic: str, *, root: str = TOPIC_ROOT) -> tuple[str | None, str | None]:
    """(site_id, sensor_id) named by a topic, or (None, None) when it is not a sensor topic."""
    prefix = f"{root}/sites/"
    if not topic.startswith(prefix):
        return None, None
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 3 or parts[1] != "sensors" or not parts[0] or not parts[2]:
        return None, None
    return parts[0], parts[2]
