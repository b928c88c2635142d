"""Daily activity features of one site from its sensor readings (pure).

Days are the site's local calendar days (its time zone comes from :mod:`iot.sitetime`): a
shift that runs past midnight UTC but not past local midnight is one day's work, and a local day
is 23 or 25 hours long when daylight saving time starts or ends. A metric is None on a day no
sensor of its kind reported: a gap, which is not zero activity. A day on which sensors reported
zero (idle machines) has the metric 0.0. Silence is counted in hours since the last reading, at
the end of each day.

The activity index compares a day with the site's own recent past: for each activity metric
(equipment hours, workforce, deliveries, concrete) the ratio of the day's value to the median
of that metric over the trailing ``baseline_days`` (gap days left out), averaged over the
metrics that have a baseline. 1.0 is a usual day, 0.0 a day with sensors up and nothing moving.
"""

from __future__ import annotations

import bisect
import logging
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Protocol

from aoi.records import SiteWork
from iot.kinds import kind_for

logger = logging.getLogger(__name__)

#: Kind behind each activity metric of :class:`SiteDayFeatures`.
ACTIVITY_KINDS: Mapping[str, str] = {
    "equipment_hours": "equipment_runtime_h",
    "workforce": "workforce_count",
    "deliveries": "deliveries_count",
    "concrete_m3": "concrete_m3",
}


class ReadingLike(Protocol):
    """What the features read from a reading (``iot.readings.Reading`` and stored readings)."""

    @property
    def sensor_id(self) -> str: ...  # noqa: D102
    @property
    def kind(self) -> str: ...  # noqa: D102
    @property
    def observed_at_utc(self) -> datetime: ...  # noqa: D102
    @property
    def value(self) -> float: ...  # noqa: D102


@dataclass(frozen=True, slots=True)
class SiteDayFeatures:
    """Activity of one site on one of its local calendar days, from its sensors.

    Belongs in ``aoi`` (``aoi/records.py``) once moved: the risk package will read it.

    Attributes:
        site_id: The site.
        day: The site-local calendar day.
        equipment_hours: Machine hours summed over every machine (h); None for a gap.
        workforce: Peak head count of the day (people); None for a gap.
        deliveries: Deliveries through the gate (count); None for a gap.
        concrete_m3: Concrete poured (m³); None for a gap.
        power_kwh: Electricity used (kWh); None for a gap.
        activity_index: The day's activity against the site's trailing baseline (1 = usual,
            0 = none); None when nothing to compare (gap, or no baseline yet).
        readings: Readings received for the day.
        sensors_reporting: Distinct sensors that reported during the day.
        hours_with_data: Local clock hours of the day (0-24) in which at least one reading was
            taken.
        gaps: Kinds the site has sensors for (seen before or during the window) that sent
            nothing this day, sorted.
        silent_sensors: Sensors seen before that sent nothing for ``silence_hours`` or more
            by the end of the day, sorted.
        hours_since_last_reading: Hours from the site's last reading to the end of the day;
            None if the site has never reported.
        site_silent: The whole site sent nothing for ``silence_hours`` or more.
    """

    site_id: str
    day: date
    equipment_hours: float | None
    workforce: float | None
    deliveries: float | None
    concrete_m3: float | None
    power_kwh: float | None
    activity_index: float | None
    readings: int
    sensors_reporting: int
    hours_with_data: int
    gaps: tuple[str, ...]
    silent_sensors: tuple[str, ...]
    hours_since_last_reading: float | None
    site_silent: bool

    @property
    def is_gap(self) -> bool:
        """No reading at all this day."""
        return self.readings == 0


def local_midnight_utc(day: date, tz: tzinfo) -> datetime:
    """The instant (UTC) at which ``day`` starts in ``tz``.

    Where a daylight-saving jump skips local midnight, the day starts at the first instant that
    exists (``zoneinfo`` resolves the missing wall time forward).
    """
    return datetime.combine(day, time(), tz).astimezone(UTC)


def _aggregate(kind: str, values: list[float]) -> float:
    how = kind_for(kind).daily
    if how == "sum":
        return float(sum(values))
    if how == "max":
        return float(max(values))
    return float(statistics.fmean(values))


def daily_features(
    readings: Iterable[ReadingLike],
    *,
    site_id: str,
    start: date,
    end: date,
    baseline_days: int = 28,
    min_baseline_days: int = 7,
    silence_hours: float = 24.0,
    tz: tzinfo = UTC,
) -> list[SiteDayFeatures]:
    """One :class:`SiteDayFeatures` per local day of ``tz`` from ``start`` to ``end`` inclusive.

    Args:
        readings: The site's readings from at least ``baseline_days`` before ``start`` up to
            the end of ``end`` (earlier ones feed the baseline and the sensor inventory; any
            order, later ones are ignored).
        site_id: The site (copied into the records).
        start: First day.
        end: Last day (inclusive).
        baseline_days: Length of the trailing window of the activity baseline (days).
        min_baseline_days: Fewest non-gap days a metric needs in that window to be compared.
        silence_hours: A sensor or the site is silent after this long without a reading.
        tz: The site's time zone: days run from local midnight to local midnight.

    Returns:
        Records in day order.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    first_day = start - timedelta(days=baseline_days)
    end_utc = local_midnight_utc(end + timedelta(days=1), tz)

    # Stage 1: bucket values per (day, kind); remember each sensor's kind and reading times.
    per_day: dict[date, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    sensors_day: dict[date, set[str]] = defaultdict(set)
    hours_day: dict[date, set[int]] = defaultdict(set)
    times_by_sensor: dict[str, list[datetime]] = defaultdict(list)
    first_seen_kind: dict[str, datetime] = {}
    for r in readings:
        t = r.observed_at_utc
        if t >= end_utc:
            continue
        times_by_sensor[r.sensor_id].append(t)
        if r.kind not in first_seen_kind or t < first_seen_kind[r.kind]:
            first_seen_kind[r.kind] = t
        local = t.astimezone(tz)
        d = local.date()
        if d < first_day:
            continue
        per_day[d][r.kind].append(r.value)
        sensors_day[d].add(r.sensor_id)
        hours_day[d].add(local.hour)
    for times in times_by_sensor.values():
        times.sort()

    # Stage 2: daily metrics over the baseline window and the requested days.
    metrics: dict[date, dict[str, float | None]] = {}
    day = first_day
    while day <= end:
        buckets = per_day.get(day, {})
        metrics[day] = {
            name: (_aggregate(kind, buckets[kind]) if kind in buckets else None)
            for name, kind in {**ACTIVITY_KINDS, "power_kwh": "power_kwh"}.items()
        }
        day += timedelta(days=1)

    # Stage 3: activity index, gaps and silence for each requested day.
    out: list[SiteDayFeatures] = []
    day = start
    while day <= end:
        m = metrics[day]
        day_end = local_midnight_utc(day + timedelta(days=1), tz)
        ratios: list[float] = []
        for name in ACTIVITY_KINDS:
            value = m[name]
            if value is None:
                continue
            window = [metrics[day - timedelta(days=k)][name] for k in range(1, baseline_days + 1)]
            past = [v for v in window if v is not None]
            if len(past) < min_baseline_days:
                continue
            median = statistics.median(past)
            if median > 0:
                ratios.append(value / median)
        buckets = per_day.get(day, {})
        gaps = tuple(sorted(k for k, seen in first_seen_kind.items() if seen < day_end and k not in buckets))
        silent: list[str] = []
        last_any: datetime | None = None
        for sensor, times in times_by_sensor.items():
            i = bisect.bisect_left(times, day_end)
            if i == 0:
                continue
            last = times[i - 1]
            if last_any is None or last > last_any:
                last_any = last
            if (day_end - last).total_seconds() >= silence_hours * 3600:
                silent.append(sensor)
        since = None if last_any is None else (day_end - last_any).total_seconds() / 3600
        out.append(
            SiteDayFeatures(
                site_id=site_id,
                day=day,
                equipment_hours=m["equipment_hours"],
                workforce=m["workforce"],
                deliveries=m["deliveries"],
                concrete_m3=m["concrete_m3"],
                power_kwh=m["power_kwh"],
                activity_index=statistics.fmean(ratios) if ratios else None,
                readings=sum(len(v) for v in buckets.values()),
                sensors_reporting=len(sensors_day.get(day, ())),
                hours_with_data=len(hours_day.get(day, ())),
                gaps=gaps,
                silent_sensors=tuple(sorted(silent)),
                hours_since_last_reading=since,
                site_silent=since is not None and since >= silence_hours,
            )
        )
        day += timedelta(days=1)
    return out


def work_levels(
    features: Iterable[SiteDayFeatures],
    *,
    start: date | None = None,
    reference_days: int = 365,
    min_reference_days: int = 14,
    working_share: float = 0.1,
    min_metrics: int = 2,
    cap: float = 3.0,
) -> list[SiteWork]:
    """How hard the site worked each day against its usual working day (what the stall test reads).

    Unlike :attr:`SiteDayFeatures.activity_index`, whose 28-day baseline sinks with a stopped site
    (four weeks in, idle *is* usual and the index reads 1), the reference here is each activity
    metric's upper quartile over the *working* days of the trailing ``reference_days``: days on
    which the metric reached ``working_share`` of the highest value it has ever had. A stop of
    months leaves it where the work was (guards at the gate of a stopped site are a few percent of
    its crews); a stop longer than the window, or sensors fitted to a site already stopped, leave
    no working days to compare with, and the level is None rather than "usual". The level is the
    mean over the metrics of value / reference, each capped at ``cap``, and needs ``min_metrics``
    of them: a head count alone cannot tell guards from crews.

    Args:
        features: Consecutive daily features, the reference history first.
        start: First day returned (default: the first of ``features``).
        reference_days: Trailing window of the reference (days).
        min_reference_days: Fewest working days a metric needs in that window to be compared.
        working_share: Share of the metric's highest value that makes a day a working day.
        min_metrics: Fewest metrics that must be compared for a level.
        cap: Largest ratio one metric contributes (a delivery rush is not three days' work).

    Returns:
        One :class:`SiteWork` per day from ``start``; level None where too few metrics could be compared.
    """
    days = sorted(features, key=lambda f: f.day)
    history: dict[str, list[tuple[date, float]]] = {name: [] for name in ACTIVITY_KINDS}
    highest: dict[str, float] = dict.fromkeys(ACTIVITY_KINDS, 0.0)
    out: list[SiteWork] = []
    for f in days:
        ratios: list[float] = []
        oldest = f.day - timedelta(days=reference_days)
        for name in ACTIVITY_KINDS:
            past = history[name]
            while past and past[0][0] < oldest:
                past.pop(0)
            value = getattr(f, name)
            if value is None:
                continue
            floor = working_share * highest[name]
            working = [v for _, v in past if v > floor]
            if len(working) >= min_reference_days:
                reference = statistics.quantiles(working, n=4)[2]
                if reference > 0:
                    ratios.append(min(value / reference, cap))
            past.append((f.day, float(value)))
            highest[name] = max(highest[name], float(value))
        if start is None or f.day >= start:
            level = statistics.fmean(ratios) if len(ratios) >= min_metrics else None
            out.append(SiteWork(f.day, level))
    return out
