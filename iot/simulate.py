"""Simulated site sensors that follow a demo site's true fate (pure, deterministic by seed).

Activity on a day is proportional to the true progress rate there: the 7-day change of the
fate curve's percent complete divided by the plan's mean daily rate (1 = on plan). Then:

* a stalled site's sensors stay up after the event day but machines stand idle, a guard or two
  are on the gate and nothing is delivered or poured ("quiet", not silent);
* a cancelled site goes silent the day after its event (sensors removed);
* a finished site winds down with the last phase and its sensors are removed 30 days after
  completion;
* no sensor reports before the plan starts.

Working hours are 07:00-18:00 local solar time (UTC offset ``round(lon / 15)``). Each day has
its own random stream seeded by (seed, site, day), so any date range yields the same readings
for the days it shares with another. Some sensors report in non-canonical units (the crane in
minutes, the power meter in Wh) so the demo exercises unit conversion.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aoi.demo import Fate, FateCurve
from aoi.model import Site

logger = logging.getLogger(__name__)

#: Sensors of a simulated site: (sensor_id, kind, unit reported).
SENSORS: tuple[tuple[str, str, str], ...] = (
    ("eq-excavator-1", "equipment_runtime_h", "h"),
    ("eq-crane-1", "equipment_runtime_h", "min"),
    ("eq-loader-1", "equipment_runtime_h", "h"),
    ("gate-headcount", "workforce_count", "count"),
    ("gate-deliveries", "deliveries_count", "count"),
    ("batch-plant", "concrete_m3", "m3"),
    ("meter-main", "power_kwh", "Wh"),
    ("vib-1", "vibration_rms", "mm/s"),
)
_UNITS = {sensor_id: (kind, unit) for sensor_id, kind, unit in SENSORS}
#: Days sensors stay after a site finishes (demobilisation).
DEMOBILISATION_DAYS = 30


@dataclass(frozen=True, slots=True)
class SimulatedReading:
    """One simulated raw reading: where it is published and the JSON object sent."""

    site_id: str
    sensor_id: str
    observed_at_utc: datetime
    payload: dict[str, Any]


def activity_intensity(curve: FateCurve, day: date) -> float:
    """True progress rate on ``day`` relative to the plan's mean rate (0 = none, 1 = on plan).

    A 7-day difference smooths the day-level steps of slowed-down fate curves.
    """
    plan_days = max(1, (curve.plan.end - curve.plan.start).days + 1)
    mean_rate = 100.0 / plan_days
    rate = (curve.percent(day) - curve.percent(day - timedelta(days=7))) / 7.0
    return max(0.0, rate / mean_rate)


def _sensors_installed(curve: FateCurve, day: date) -> bool:
    if day < curve.plan.start:
        return False
    if curve.fate is Fate.CANCELLED and curve.event_day is not None and day > curve.event_day:
        return False
    if curve.fate is Fate.FINISHED or curve.percent(day) >= 100.0 - 1e-9:
        done = _completion_day(curve, day)
        if done is not None and day > done + timedelta(days=DEMOBILISATION_DAYS):
            return False
    return True


def _completion_day(curve: FateCurve, until: date) -> date | None:
    """First day the curve reaches 100 %, searched up to ``until``."""
    if curve.percent(until) < 100.0 - 1e-9:
        return None
    lo, hi = curve.plan.start.toordinal(), until.toordinal()
    while lo < hi:
        mid = (lo + hi) // 2
        if curve.percent(date.fromordinal(mid)) >= 100.0 - 1e-9:
            hi = mid
        else:
            lo = mid + 1
    return date.fromordinal(lo)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def simulated_readings(
    site: Site, curve: FateCurve, start: date, end: date, *, seed: int = 0
) -> Iterator[SimulatedReading]:
    """Raw readings of one site's simulated sensors, day by day from ``start`` to ``end`` inclusive.

    Yields:
        Readings in time order within each day; payloads pass validation as they are.
    """
    lon = site.boundary_wgs84.centroid.x
    offset_h = round(lon / 15.0)
    work_hours = range(7, 18)  # local solar time
    day = start
    while day <= end:
        if _sensors_installed(curve, day):
            yield from _day(site.id, curve, day, offset_h, work_hours, seed)
        day += timedelta(days=1)


def _day(
    site_id: str, curve: FateCurve, day: date, offset_h: int, work_hours: range, seed: int
) -> Iterator[SimulatedReading]:
    rng = random.Random(f"{seed}:{site_id}:{day.isoformat()}")
    x = activity_intensity(curve, day)
    midnight = datetime.combine(day, time(), UTC)
    for hour in range(24):
        at = midnight + timedelta(hours=hour)
        local = (hour + offset_h) % 24
        working = local in work_hours
        values: list[tuple[str, float]] = []
        if working:
            for sensor_id, _kind, unit in SENSORS[:3]:
                runtime_h = min(1.0, x * rng.uniform(0.5, 0.9))
                values.append((sensor_id, runtime_h * 60.0 if unit == "min" else runtime_h))
            guards = 2
            values.append(("gate-headcount", float(guards + max(0, round(rng.gauss(45.0 * x, 3.0 * math.sqrt(x)))))))
            values.append(("gate-deliveries", float(_poisson(rng, 0.6 * x))))
            pour = rng.uniform(4.0, 9.0) if rng.random() < 0.35 * min(x, 1.5) else 0.0
            values.append(("batch-plant", round(pour, 2)))
            values.append(("vib-1", round(0.3 + 2.5 * x * rng.uniform(0.6, 1.0), 3)))
        base_kwh = 12.0 + (60.0 * x * rng.uniform(0.7, 1.0) if working else 0.0)
        values.append(("meter-main", round(base_kwh * 1000.0, 1)))
        for sensor_id, value in values:
            kind, unit = _UNITS[sensor_id]
            yield SimulatedReading(
                site_id,
                sensor_id,
                at,
                {
                    "site_id": site_id,
                    "sensor_id": sensor_id,
                    "kind": kind,
                    "observed_at": at.isoformat(),
                    "value": value,
                    "unit": unit,
                },
            )
