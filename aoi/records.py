"""Records that cross capability packages (imagery -> jobs -> store, models -> jobs -> store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class SceneRecord:
    """What happened to one scene of one site: used, or skipped with the reason.

    Attributes:
        site_id: The site.
        provider: "local", "stac", "sentinelhub" or "simulated".
        scene_id: The provider's scene (item) id.
        acquired_at_utc: Sensing time, timezone-aware UTC.
        cloud_pct: Cloud and shadow share over the site, 0-100 (None if unknown).
        valid_fraction: Share of the site's pixels usable after masking, 0-1.
        used: Whether the scene enters the datacube.
        reason: Why it was skipped ("" when used).
        meta: Provenance: harmonisation offset/scale, processing baseline, gsd, cache key.
    """

    site_id: str
    provider: str
    scene_id: str
    acquired_at_utc: datetime
    cloud_pct: float | None
    valid_fraction: float
    used: bool
    reason: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SceneProgress:
    """Progress observed in one scene of one site against its pre-construction baseline.

    Attributes:
        site_id: The site.
        scene_id: The scene.
        acquired_at_utc: Sensing time.
        percent: Weighted percent complete (0-100), None when too little was seen.
        phase_fractions: Per phase (plan order), done share 0-1, None where not seen enough.
        observed_fraction: Share of the planned footprints seen cloud-free, 0-1.
        confidence: Mean decisiveness of the change probabilities over the footprints, 0-1.
        outside_change_fraction: Share of the site outside the footprints that changed, 0-1.
        reason: Why there is no estimate ("" when there is one).
    """

    site_id: str
    scene_id: str
    acquired_at_utc: datetime
    percent: float | None
    phase_fractions: tuple[float | None, ...]
    observed_fraction: float
    confidence: float
    outside_change_fraction: float | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ProgressPoint:
    """One date of a site's fitted progress curve against plan."""

    on: date
    planned_pct: float
    observed_pct: float
    lower_pct: float
    upper_pct: float


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Something a monotone curve must not smooth away (demolition, a cancelled project)."""

    kind: str  #: "reversal"; "set_aside" (one scene read against idle sensors, kept out of the curve)
    on: date
    detail: str
    drop_pp: float


@dataclass(frozen=True, slots=True)
class ProgressSummary:
    """A site's progress against plan on one day, with its uncertainty.

    Attributes:
        site_id: The site.
        as_of: The day the figures are for.
        planned_pct: What the plan expects by ``as_of``.
        observed_pct: Fitted percent complete at ``as_of``.
        lower_pct: Lower edge of the confidence band at ``as_of``.
        upper_pct: Upper edge.
        deviation_pp: ``observed_pct - planned_pct``.
        slip_days: Days behind plan (earned schedule): ``as_of`` minus the day the plan expected
            today's observed progress (of the days the plan stood there, the one closest to
            ``as_of``); negative when ahead. None before any observation.
        rate_pp_per_week: Observed progress rate over the recent window.
        forecast_completion: Expected completion day at the recent rate (None if no progress).
        forecast_early: Early end of the forecast range.
        forecast_late: Late end of the forecast range (None if unbounded).
        stalled: The plan expects progress and none was seen for the stall window.
        outside_activity_pct: Share of the site outside the footprints with change (scope change).
        events: Reversals and other flagged events.
        scenes_used: How many scenes gave an estimate.
        scenes_skipped: How many gave none.
        last_observation: Sensing day of the newest usable scene.
        method: "model:<checkpoint>@<sha12>" or "baseline:<name>".
        slip_low_days: Low end of the slip range: the slip if progress were at the top of the
            confidence band, or the site at the end of a stretch of its plan imagery cannot tell
            apart (a pause, or buildings not yet showing). None when there is no slip.
        slip_high_days: High end of the slip range (bottom of the band, start of such a stretch).
        stall_check: What the stall test could tell on ``as_of``: ``"stalled"`` (the flag is
            raised), ``"not_stalled"``, ``"not_expected"`` (the plan expects no visible progress
            in the window) or ``"insufficient"`` (too few clear scenes to tell: a cloudy month
            cannot clear a site) or ``"disputed"`` (imagery saw a stop, the site's sensors saw it
            at work: no flag). None for summaries stored before it existed.
        stall_witnesses: What saw the stop when ``stalled``: ``"imagery"`` (no progress in the
            scenes), ``"sensors"`` (the site's machines and crews idle), or both; empty otherwise.
    """

    site_id: str
    as_of: date
    planned_pct: float
    observed_pct: float | None
    lower_pct: float | None
    upper_pct: float | None
    deviation_pp: float | None
    slip_days: int | None
    rate_pp_per_week: float | None
    forecast_completion: date | None
    forecast_early: date | None
    forecast_late: date | None
    stalled: bool
    outside_activity_pct: float | None
    events: tuple[ProgressEvent, ...]
    scenes_used: int
    scenes_skipped: int
    last_observation: date | None
    method: str
    slip_low_days: int | None = None
    slip_high_days: int | None = None
    stall_check: str | None = None
    stall_witnesses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SiteWork:
    """How hard a site worked on one of its local days, as its sensors tell (what progress reads of IoT).

    Attributes:
        day: The site-local calendar day.
        level: The day's work against the site's usual working day (1 = usual, 0 = sensors up
            and nothing moving); None when no activity sensor reported (a gap, not idleness).
    """

    day: date
    level: float | None
