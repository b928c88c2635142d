import json
import math

import pytest

from iot.readings import parse_timestamp
from jobs.iot import import_csv, ingest_body, ingest_items
from store import readings as rs
from tests.iot.conftest import NOW, reading

BAD = {
    "unknown site": reading(site_id="nowhere", sensor_id="a"),
    "no UTC offset": reading(sensor_id="b", observed_at="2026-11-01T10:00:00"),
    "in the future": reading(sensor_id="c", observed_at="2026-11-01T12:30:00+00:00"),
    "not finite": reading(sensor_id="d", value=math.nan),
    "is not accepted for": reading(sensor_id="e", unit="kWh"),
    "outside the physical range": reading(sensor_id="f", value=30, unit="h"),
}


def test_every_rejection_kind_is_dead_lettered_with_raw_payload_and_reason(demo_engine):
    good = reading()
    outcomes = ingest_items(demo_engine, [good, *BAD.values()], source="http", now_utc=NOW)
    assert [o.status for o in outcomes] == ["accepted"] + ["rejected"] * len(BAD)
    dead = {d.sensor_id: d for d in rs.list_rejected(demo_engine)}
    for reason, item in BAD.items():
        letter = dead[item["sensor_id"]]
        assert reason in letter.reason
        assert json.loads(letter.raw.replace("NaN", "null"))["sensor_id"] == item["sensor_id"]
        assert letter.source == "http"
    assert rs.count_readings(demo_engine) == 1


def test_replay_is_a_noop_and_a_changed_value_is_a_conflict(demo_engine):
    items = [reading(sensor_id=f"s{i}", observed_at=f"2026-10-01T0{i}:00:00+00:00") for i in range(5)]
    assert {o.status for o in ingest_items(demo_engine, items, source="mqtt", now_utc=NOW)} == {"accepted"}
    # The same instants written with another offset are the same readings.
    shifted = [dict(it, observed_at=parse_timestamp(it["observed_at"]).astimezone().isoformat()) for it in items]
    assert {o.status for o in ingest_items(demo_engine, shifted, source="mqtt", now_utc=NOW)} == {"duplicate"}
    changed = dict(items[0], value=43)
    (out,) = ingest_items(demo_engine, [changed], source="http", now_utc=NOW)
    assert out.status == "rejected"
    assert out.reason is not None
    assert "conflict" in out.reason
    assert rs.count_readings(demo_engine) == 5
    assert rs.list_rejected(demo_engine)[0].reason == out.reason


def test_duplicates_inside_one_batch_are_stored_once(demo_engine):
    outcomes = ingest_items(demo_engine, [reading(), reading(), reading(value=43)], source="http", now_utc=NOW)
    assert [o.status for o in outcomes] == ["accepted", "duplicate", "rejected"]
    assert rs.count_readings(demo_engine) == 1


def test_malformed_http_body_is_dead_lettered_whole(demo_engine):
    with pytest.raises(ValueError, match="malformed JSON"):
        ingest_body(demo_engine, b'[{"site_id": "de-rgb-hall",')
    (letter,) = rs.list_rejected(demo_engine)
    assert letter.raw == '[{"site_id": "de-rgb-hall",'
    assert "malformed JSON" in letter.reason


def test_csv_import_stores_good_rows_dead_letters_bad_ones_and_reimport_adds_nothing(demo_engine, tmp_path):
    path = tmp_path / "feed.csv"
    path.write_text(
        "site_id,sensor_id,kind,observed_at,value,unit\n"
        "de-rgb-hall,gate,workforce_count,2026-10-01T08:00:00+02:00,41,count\n"
        "de-rgb-hall,gate,workforce_count,2026-10-01T09:00:00+02:00,nan,count\n"
        "de-rgb-hall,meter,power_kwh,2026-10-01T09:00:00Z,1500,Wh\n"
        "nowhere,meter,power_kwh,2026-10-01T09:00:00Z,1,kWh\n"
    )
    first = import_csv(demo_engine, path)
    assert (first.accepted, first.duplicate, first.rejected) == (2, 0, 2)
    again = import_csv(demo_engine, path)
    assert (again.accepted, again.duplicate, again.rejected) == (0, 2, 2)
    origins = {d.origin for d in rs.list_rejected(demo_engine, source="csv")}
    assert origins == {"feed.csv:3", "feed.csv:5"}
    (meter,) = [r for r in rs.list_readings(demo_engine, "de-rgb-hall") if r.sensor_id == "meter"]
    assert (meter.value, meter.unit) == (1.5, "kWh")


def test_conflicting_item_of_a_batch_message_is_dead_lettered_as_its_json(demo_engine):
    import time
    from datetime import UTC, datetime

    from iot.mqtt import Message
    from iot.readings import topic_for
    from jobs.iot import MessageWriter

    first = {"kind": "power_kwh", "observed_at": "2026-10-01T08:00:00+00:00", "value": 5.0, "unit": "kWh"}
    ingest_items(demo_engine, [dict(first, site_id="de-rgb-hall", sensor_id="meter")], source="http", now_utc=NOW)
    changed = dict(first, value=6.0)
    other = dict(first, observed_at="2026-10-01T09:00:00+00:00")
    payload = json.dumps([changed, other]).encode()
    msg = Message(topic_for("de-rgb-hall", "meter"), payload, datetime.now(UTC), time.monotonic(), False, 1, 1, 1)
    writer = MessageWriter(demo_engine)
    writer([msg])
    assert (writer.summary.accepted, writer.summary.rejected) == (1, 1)
    (letter,) = rs.list_rejected(demo_engine, source="mqtt")
    assert "conflict" in letter.reason
    assert json.loads(letter.raw) == {
        "site_id": "de-rgb-hall",
        "sensor_id": "meter",
        "kind": "power_kwh",
        "observed_at": "2026-10-01T08:00:00+00:00",
        "value": 6.0,
        "unit": "kWh",
    }


@pytest.mark.parametrize(
    "when",
    [
        "2026-10-01T08:00:00+00:00",
        "2026-10-01T08:00:00.000001+00:00",
        "2026-03-29T03:30:15.5+02:00",
        "1999-12-31T23:59:59.999999-11:00",
    ],
)
def test_sqlite_text_of_a_time_is_the_one_sqlalchemy_writes(when):
    from sqlalchemy.dialects import sqlite

    from store.iot_schema import ReadingRow
    from store.readings import sqlite_datetime

    dialect = sqlite.dialect()
    process = ReadingRow.__table__.c.observed_at.type.dialect_impl(dialect).bind_processor(dialect)
    at = parse_timestamp(when)
    assert sqlite_datetime(at) == process(at)


def test_store_keeps_awkward_strings_exactly_and_refuses_naive_times(demo_engine):
    from datetime import UTC, datetime

    from iot.readings import Reading
    from store.readings import ReadingsRefusedError

    at = datetime(2026, 10, 1, 8, tzinfo=UTC)
    awkward = Reading("de-rgb-hall", "NULL", "power_kwh", at, 1.5, 'k"W\\h, {x}')
    result = rs.save_batch(demo_engine, [awkward], source="http")
    assert [s.value for s in result.statuses] == ["accepted"]
    (stored,) = rs.list_readings(demo_engine, "de-rgb-hall")
    assert (stored.sensor_id, stored.unit, stored.observed_at_utc, stored.value) == ("NULL", 'k"W\\h, {x}', at, 1.5)
    assert [s.value for s in rs.save_batch(demo_engine, [awkward], source="http").statuses] == ["duplicate"]
    naive = Reading("de-rgb-hall", "m", "power_kwh", datetime(2026, 10, 1, 9), 1.0, "kWh")
    with pytest.raises(ReadingsRefusedError, match="has no time zone"):
        rs.save_batch(demo_engine, [naive], source="http")
    assert rs.count_readings(demo_engine) == 1
