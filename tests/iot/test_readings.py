import math
from datetime import UTC, datetime

import pytest

from iot.errors import ReadingInvalidError, UnitInvalidError
from iot.kinds import Kind, UnitConversion, kind_for, register_kind
from iot.readings import ids_from_topic, parse_payload, reading_payload, topic_for, validate_reading
from tests.iot.conftest import NOW, reading

SITES = {"de-rgb-hall"}.__contains__


def _reasons(item, **kw):
    with pytest.raises(ReadingInvalidError) as info:
        validate_reading(item, now_utc=NOW, site_exists=SITES, **kw)
    return str(info.value)


def test_valid_reading_is_converted_to_canonical_unit_and_utc():
    r = validate_reading(reading(), now_utc=NOW, site_exists=SITES)
    assert (r.kind, r.unit) == ("equipment_runtime_h", "h")
    assert r.value == pytest.approx(0.7)
    assert r.observed_at_utc == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"site_id": "nowhere"}, "unknown site 'nowhere'"),
        ({"observed_at": "2026-11-01T10:00:00"}, "has no UTC offset"),
        ({"observed_at": "2026-11-01T12:06:00+00:00"}, "in the future"),
        ({"observed_at": "yesterday"}, "not an ISO 8601 timestamp"),
        ({"value": math.nan}, "not finite"),
        ({"value": math.inf}, "not finite"),
        ({"value": "12"}, "must be a number"),
        ({"unit": "kg"}, "unit 'kg' is not accepted for equipment_runtime_h"),
        ({"value": 25, "unit": "h"}, "outside the physical range [0, 24]"),
        ({"value": -1}, "outside the physical range"),
        ({"kind": "laser_pointer"}, "unknown reading kind 'laser_pointer'"),
        ({"sensor_id": "bad/topic"}, "sensor_id 'bad/topic' must be"),
    ],
)
def test_each_bad_reading_is_rejected_with_its_reason(overrides, reason):
    assert reason in _reasons(reading(**overrides))


def test_validation_collects_every_problem():
    text = _reasons(reading(site_id="nowhere", observed_at="2026-11-01T10:00:00", unit="kg"))
    assert "unknown site" in text
    assert "no UTC offset" in text
    assert "unit 'kg'" in text


def test_late_and_out_of_order_readings_are_accepted():
    old = validate_reading(reading(observed_at="2025-01-01T00:00:00Z"), now_utc=NOW, site_exists=SITES)
    assert old.observed_at_utc.year == 2025
    soon = validate_reading(reading(observed_at="2026-11-01T12:04:00+00:00"), now_utc=NOW, site_exists=SITES)
    assert soon.observed_at_utc.minute == 4


def test_topic_ids_must_agree_with_payload():
    assert "disagrees with the topic" in _reasons(reading(), site_id="de-rgb-hall", sensor_id="other")
    r = validate_reading(
        {k: v for k, v in reading().items() if k not in ("site_id", "sensor_id")},
        now_utc=NOW,
        site_exists=SITES,
        site_id="de-rgb-hall",
        sensor_id="gate",
    )
    assert (r.site_id, r.sensor_id) == ("de-rgb-hall", "gate")


def test_payload_batch_keeps_good_items_and_rejects_malformed_json_whole():
    parsed = parse_payload(
        b'[{"x": 1}, ' + __import__("json").dumps(reading()).encode() + b"]", now_utc=NOW, site_exists=SITES
    )
    assert [p.reading is not None for p in parsed] == [False, True]
    (bad,) = parse_payload(b'{"value": 1', now_utc=NOW, site_exists=SITES, origin="t")
    assert bad.rejection is not None
    assert "malformed JSON" in bad.rejection.reason
    assert bad.rejection.raw == '{"value": 1'


def test_reading_payload_round_trips():
    r = validate_reading(reading(), now_utc=NOW, site_exists=SITES)
    assert validate_reading(reading_payload(r), now_utc=NOW, site_exists=SITES) == r


def test_topics_round_trip_and_foreign_topics_are_not_sensor_topics():
    assert ids_from_topic(topic_for("a", "b")) == ("a", "b")
    assert ids_from_topic("sitewatch/sites/a/other/b") == (None, None)
    assert ids_from_topic(topic_for("a", "b", root="x"), root="x") == ("a", "b")


def test_registry_is_extensible_and_converts_affine_units():
    register_kind(
        Kind("dust_pm10_ugm3", "ug/m3", {"ug/m3": UnitConversion(1.0), "mg/m3": UnitConversion(1000)}, 0, 1e5, "mean"),
        replace=True,
    )
    assert kind_for("dust_pm10_ugm3").to_canonical(0.05, "mg/m3") == pytest.approx(50)
    assert kind_for("air_temperature_c").to_canonical(212, "degF") == pytest.approx(100)
    with pytest.raises(UnitInvalidError):
        kind_for("power_kwh").to_canonical(1, "J/s")
