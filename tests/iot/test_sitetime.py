import dataclasses
import logging
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from aoi.demo import demo_portfolio
from iot.errors import SiteTimezoneError
from iot.features import daily_features, local_midnight_utc
from iot.readings import Reading
from iot.sitetime import nautical_zone, site_timezone
from jobs.iot import ingest_items, site_daily_features

SITES = {s.id: s for s in demo_portfolio().sites}
BRISBANE = ZoneInfo("Australia/Brisbane")  # UTC+10 all year


def _shift(day: date, tz, *, sensor="eq", hours=range(6, 18)):
    """One equipment-runtime reading per local hour of a working day."""
    return [
        Reading("s1", sensor, "equipment_runtime_h", datetime(day.year, day.month, day.day, h, tzinfo=tz), 1.0, "h")
        for h in hours
    ]


@pytest.mark.parametrize(
    ("site_id", "zone"),
    [
        ("au-bne-solar", "Australia/Brisbane"),
        ("br-cps-warehouse", "America/Sao_Paulo"),
        ("in-pnq-factory", "Asia/Kolkata"),
        ("ke-nbo-housing", "Africa/Nairobi"),
    ],
)
def test_site_zone_comes_from_its_country_and_nearest_zone(site_id, zone):
    assert site_timezone(SITES[site_id]) == ZoneInfo(zone)


def test_explicit_timezone_property_wins_and_a_bad_one_is_refused_by_name():
    site = SITES["de-rgb-hall"]
    assert site_timezone(dataclasses.replace(site, properties={"timezone": "Europe/Berlin"})) == ZoneInfo(
        "Europe/Berlin"
    )
    with pytest.raises(SiteTimezoneError, match=r"'de-rgb-hall': properties.timezone: 'Mars/Olympus' is not a zone"):
        site_timezone(dataclasses.replace(site, properties={"timezone": "Mars/Olympus"}))
    with pytest.raises(SiteTimezoneError, match="must be an IANA zone name"):
        site_timezone(dataclasses.replace(site, properties={"timezone": 10}))


def test_unknown_region_falls_back_to_the_longitude_zone_with_a_warning(caplog):
    site = dataclasses.replace(SITES["au-bne-solar"], region="ZZ-1")
    with caplog.at_level(logging.WARNING, logger="iot.sitetime"):
        zone = site_timezone(site)
    assert zone.utcoffset(None) == timedelta(hours=10)
    assert "set properties.timezone" in caplog.text
    assert nautical_zone(-47.1).utcoffset(None) == timedelta(hours=-3)
    assert nautical_zone(3.0) is UTC


def test_a_local_working_day_that_spans_two_utc_days_is_one_day():
    day = date(2026, 10, 2)
    # 06:00-18:00 in Brisbane is 20:00 UTC the day before to 08:00 UTC.
    history = [r for k in range(1, 10) for r in _shift(day - timedelta(days=k), BRISBANE)]
    readings = [*history, *_shift(day, BRISBANE)]
    (local,) = daily_features(readings, site_id="s1", start=day, end=day, tz=BRISBANE)
    assert (local.equipment_hours, local.readings, local.hours_with_data) == (12.0, 12, 12)
    assert local.activity_index == pytest.approx(1.0)
    # Counted in UTC days the same shift is split 4 h / 8 h, and the index says half a day.
    (utc,) = daily_features(readings, site_id="s1", start=day, end=day)
    assert utc.equipment_hours == 8.0
    assert utc.activity_index == pytest.approx(8 / 12)


def test_daylight_saving_day_has_23_hours_and_loses_no_reading():
    berlin = ZoneInfo("Europe/Berlin")
    day = date(2026, 3, 29)  # clocks go from 02:00 to 03:00
    start, end = local_midnight_utc(day, berlin), local_midnight_utc(day + timedelta(days=1), berlin)
    assert end - start == timedelta(hours=23)
    hourly = [
        Reading("s1", "meter", "power_kwh", start + timedelta(hours=h), 1.0, "kWh")
        for h in range(-2, 25)  # two hours either side of the local day
    ]
    feats = {f.day: f for f in daily_features(hourly, site_id="s1", start=day - timedelta(days=1), end=day, tz=berlin)}
    assert feats[day].readings == 23
    assert feats[day].power_kwh == 23.0
    assert feats[day].hours_with_data == 23


def test_stored_readings_are_counted_on_the_sites_local_day(demo_engine):
    # 22:30 UTC on 1 October is 08:30 on 2 October at the Brisbane site.
    items = [
        {
            "site_id": "au-bne-solar",
            "sensor_id": "gate",
            "kind": "workforce_count",
            "observed_at": "2026-10-01T22:30:00+00:00",
            "value": 37,
            "unit": "count",
        }
    ]
    assert [o.status for o in ingest_items(demo_engine, items, source="http")] == ["accepted"]
    feats = {f.day: f for f in site_daily_features(demo_engine, "au-bne-solar", date(2026, 10, 1), date(2026, 10, 2))}
    assert feats[date(2026, 10, 1)].workforce is None
    assert feats[date(2026, 10, 2)].workforce == 37.0
    utc = {
        f.day: f for f in site_daily_features(demo_engine, "au-bne-solar", date(2026, 10, 1), date(2026, 10, 2), tz=UTC)
    }
    assert utc[date(2026, 10, 1)].workforce == 37.0
