"""Progress against plan: a monotone curve through per-scene estimates, slip, forecast and flags.

Pure functions over domain records; no file, database or network access.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt

from aoi.model import Plan, builds_on_pad
from aoi.records import ProgressEvent, ProgressPoint, ProgressSummary, SceneProgress, SiteWork
from models.estimate import BuildLadder

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CurveOptions:
    """Tuning of the progress curve.

    Attributes:
        noise_pp: Per-scene noise of a fully seen, confident estimate (percentage points, 1 sigma).
        band_z: Width of the confidence band in sigmas (1.64 = 90 %).
        density_days: Half-width of the window counting nearby scenes for the band.
        smooth_days: Bandwidth of the local-linear smoother applied before the monotone fit.
        complete_pct: A fitted curve at or above this is complete (estimates of a finished site
            scatter below 100, never above, so the plateau sits a little under 100).
        reversal_pp: A sustained drop below the running maximum larger than this is a reversal.
        reversal_min_scenes: Scenes after the drop needed to call it sustained.
        reversal_share: On clear scenes, a sustained drop by this share of the level before it is
            a reversal too (:func:`_reversal_split`), where that is under ``reversal_pp``: a
            cleared pad of 15 % that grows back over drops 4.5 pp in about a month. 0.3 added no
            reversal on 215 never-reversed bench sites checked every 10 days (two finished ones
            read one before).
        reversal_floor_pp: Least drop that share may ask for, four times a clear reading's scatter.
        rate_window_days: Window of the recent progress rate.
        stall_days: No progress for this long, while the plan expects some, is a stall.
        stall_min_pp: Less observed progress than this over the stall window counts as none
            (round one's anchored-slope test).
        stall_planned_pp: The plan, followed at the site's own pace, must expect at least this
            much *visible* progress over the stall window.
        stall_noise_pp: Scatter (1 sigma, pp) of a good per-scene estimate from a clear scene.
        stall_noise_partial_pp: The same for a scene that saw less than ``stall_clear_seen``.
        stall_outlier_clear: Chance that a clear scene is misread (a building flickering in or
            out of view, by 10-20 pp).
        stall_outlier_partial: The same for a scene that saw less.
        stall_clear_seen: Seen share of the footprints that makes a scene clear.
        stall_min_scenes: Scenes with an estimate needed in the stall window before any verdict;
            with fewer, the evidence is insufficient and no stall is flagged.
        stall_min_clear: Of those, clear scenes needed. One: a window of partial scenes alone is
            not evidence of a stop, since partial readings of a moving site can sit at the
            previous level for weeks (seed 602's on-track site read 59-65 % on four partial
            scenes while it rose from 61 to 71 %).
        stall_slow_fraction: The alternative to "stopped" is "moving at this fraction of the
            site's own pace", so a site that merely slowed down is not called stalled.
        stall_log_ratio: Natural log of how many times likelier "stopped" must be than "moving"
            for the flag (strictly). 1.1 = ln 3, "substantial" evidence on Jeffreys' scale: stalls
            are rare in a book, and with 0 (merely likelier) on-track and late sites whose month
            of readings fit both alike were flagged (4 of 72 on dev seeds, likelihood ratios 0.01
            to 0.9). Higher trades recall for fewer false stalls (see :func:`is_stalled`).
        stall_anchor_every_window: Also require the anchored-slope test (:func:`anchored_stall`)
            on a full ``stall_days`` window. Off: there the likelihood test, which models phantom
            slabs and misreads, decides alone; the anchored test, fooled by a phantom slab in its
            window (it reads as progress), only vetoes on a window widened for want of scenes,
            where a free two-month run-up lets "ran fast, then stopped" fit a site that kept
            moving (seed 101's on-track site, 23 March 2026, log ratio 3.9 on one clear scene).
            Off raised stall recall on seeds 301-303 from 0.2 to 0.4 with no false stall on the
            dev seeds; on, the flag needs both tests everywhere (the previous behaviour).
        stall_confirm_days: The test must also have said "stalled" this many days earlier (on
            what was known then) before the flag is raised; 0 for no confirmation.
        level_tol_pp: Readings within this of each other date to the same plan day (how flat the
            visible plan must be to count as a plateau when dating observed progress).
        stall_outlier_max: Cap on a site's measured misread chance (:func:`site_reading_noise`):
            above it, "misread" would explain most readings and the test could say nothing.
        stall_phantom_floor: Least chance that a reading is a phantom slab (one slab step of the
            buildings, ``PlanCurves.phantom_pp``, too high); the site's own chance is measured on
            its history (:func:`site_reading_noise`), so this is only a floor. 0: measured only.
        noise_min_scenes: Readings of a class (clear or partial) needed to measure a site's own
            scatter and misread chance; with fewer, the option values stand.
        finish_quantile: Quantile of the readings that must reach ``complete_pct`` for a site to
            read finished (:func:`finish_day`): finished sites scatter below 100, never above,
            so their upper readings are the informative ones; the upper quartile tolerates one
            low reading in four.
        finish_window_days: Window centred on a candidate finish day whose readings must say
            finished (a month: six revisits, about four clear ones).
        finish_min_scenes: Readings needed in that window, and after it, for a verdict.
        finish_clear_seen: Seen share of the footprints from which a scene's reading can overrule
            partial views that read a site finished (:func:`finish_day`): a view that missed a
            tenth of the footprints can over-read by about as much, one that missed a third (the
            cloud over the unbuilt part) by 30 pp.
        finish_shade_pp: How far under ``complete_pct`` a month's only such scene must read to
            overrule them: a roof in shadow reads a finished site 6-10 pp low, while an
            unfinished site seen whole reads its level (1703-0004: 81 % while two partial views
            read 99-100). Two or more such scenes overrule from ``noise_pp`` under.
        view_tol: Partial scenes whose seen shares differ by no more than this saw the same part
            of the footprints (a swath edge repeats to the pixel; clouds do not), so their readings
            share a bias and are compared with each other.
        min_pace: Slowest pace (plan days per day) assumed when projecting a site through a plateau.
        max_pace: Fastest.
        warp_pace_step: Grid step of the pace (plan days per day) when fitting a site's own
            schedule to its raw estimates (:func:`plan_warps`); finer than the pace can be told
            from a year of readings.
        warp_delay_step_days: Grid step of the start delay of that schedule, in days (well under
            the 5-day revisit of the imagery).
        warp_max_early_days: Earliest start considered, in days before the plan's start.
        warp_max_delay_days: Latest start considered, in days after the plan's start (the
            longest late start a book of construction loans sees before the loan itself is
            reworked).
        warp_memory_days: Half-life, in days, of a reading's weight in that fit: the schedule
            that matters is the site's current one (three months: about a phase's length).
        warp_region_nats: Schedules within this many nats of the best fit count as consistent
            with the readings: 3.0 is half the 95 % quantile of chi-square with two degrees of
            freedom (pace and delay), the profile-likelihood 95 % region.
        warp_phantom_prior: Chance, in that fit, that a reading is a phantom slab (one slab step,
            ``PlanCurves.phantom_pp``, high): the starting value of the measured rate
            (:func:`site_reading_noise`), which itself rests on this fit. Without it, phantoms on
            every third scene pulled a half-pace site's schedule a step ahead, so flat readings
            before its real slab step read as a stop.
        idle_days: The sensor witness (:func:`idle_evidence`) looks at this many days before the
            verdict: three weeks, past a one-week break, so a site stopped on a stretch of its
            plan that imagery cannot see (earthworks before slabs) is flagged within a month.
        idle_level: A day at or below this share of the site's usual work is idle (guards alone
            at the gate of a stopped site read a few hundredths).
        idle_share: Share of the reported days in that window that must be idle.
        idle_min_reported: Share of the window's days that must have sensor reports; a feed
            that went quiet (removed, broken) is a gap, not a stop.
        idle_planned_pp: Least nominal progress (all work, seen from space or not) the plan must
            expect over that window, on the slowest schedule the imagery allows. Sensors measure
            the work itself, so any planned work will do; this only keeps out planned pauses and
            a schedule's last days. Lower than ``stall_planned_pp``: a site running at a quarter
            of the plan's pace is expected under 3 pp in three weeks. Chosen on seeds 101-103
            (0.5 raised a false stall; the minimum over schedules, not their median, for the
            same reason).
        position_by_schedule: Where the visible plan is flat around the observed level (a pause, or
            a building not showing yet), place the site by its own schedule fitted to the raw
            readings (:func:`plan_warps`, the likeliest pace and delay) rather than by the pace its
            smoothed curve kept until it reached the level, which enters the plateau late and
            read on-plan sites 15-25 days late there. Lowered slip error on all four development
            lines (101-103 9.9 to 7.9 d, 301-303 14.6 to 10.2, 501-503 17.1 to 14.1, 601-603 15.8
            to 12.4).
        idle_whole_stretch: Measure the plan's expectation over the whole idle stretch
            (:func:`idle_since`), not only the last ``idle_days``: a site idle since a day the plan,
            on every schedule the imagery allows, did not pause stopped while work was due. Not
            for a site within ``noise_pp`` of complete (a finish the readings trail).
        idle_memory_days: Half-life of a reading's weight (``warp_memory_days``) in the fit of
            the schedules the sensor witness takes the least-expecting of. It asks when work
            should have resumed after a pause, which the earthworks' pace answers; three months
            faded that answer enough to admit schedules a month slower: two stops on the day work
            was due were flagged 32 and 44 days after it (2302-0003 on its pad, 1601-0001; now 30
            and 26). Six months raised no false stall on ten bench lines (180 sites); a year
            raised one (101-103) and flagged no stall sooner.
        busy_level: Median work level over that window at or above which the sensors saw the site
            at work, so an imagery stall flag is disputed rather than raised: half a usual day,
            far above idle (0.2 and under; guards alone read a few hundredths).
    """

    noise_pp: float = 4.0
    band_z: float = 1.64
    density_days: float = 20.0
    smooth_days: float = 20.0
    complete_pct: float = 97.5
    reversal_pp: float = 10.0
    reversal_share: float = 0.3
    reversal_floor_pp: float = 4.0
    reversal_min_scenes: int = 3
    rate_window_days: int = 56
    stall_days: int = 28
    stall_min_pp: float = 1.5
    stall_planned_pp: float = 3.0
    stall_noise_pp: float = 1.0
    stall_noise_partial_pp: float = 2.5
    stall_outlier_clear: float = 0.15
    stall_outlier_partial: float = 0.5
    stall_clear_seen: float = 0.97
    stall_min_scenes: int = 3
    stall_min_clear: int = 1
    stall_slow_fraction: float = 0.5
    stall_log_ratio: float = 1.1
    stall_anchor_every_window: bool = False
    stall_confirm_days: int = 0
    level_tol_pp: float = 2.0
    view_tol: float = 0.015
    finish_quantile: float = 0.75
    finish_window_days: int = 30
    finish_min_scenes: int = 4
    finish_clear_seen: float = 0.9
    finish_shade_pp: float = 10.0
    stall_outlier_max: float = 0.6
    stall_phantom_floor: float = 0.0
    noise_min_scenes: int = 8
    min_pace: float = 0.25
    max_pace: float = 2.0
    warp_pace_step: float = 0.025
    warp_delay_step_days: float = 3.0
    warp_max_early_days: float = 60.0
    warp_max_delay_days: float = 240.0
    warp_region_nats: float = 3.0
    warp_memory_days: float = 90.0
    warp_phantom_prior: float = 0.05
    idle_days: int = 21
    idle_level: float = 0.2
    idle_share: float = 0.9
    idle_min_reported: float = 0.8
    idle_planned_pp: float = 1.0
    busy_level: float = 0.5
    idle_whole_stretch: bool = True
    idle_memory_days: float = 180.0
    position_by_schedule: bool = True


def isotonic_fit(y: npt.ArrayLike, w: npt.ArrayLike, *, increasing: bool = True) -> FloatArray:
    """Weighted least-squares monotone fit (pool-adjacent-violators).

    Args:
        y: Values in time order.
        w: Positive weights, same length.
        increasing: Non-decreasing fit when True, non-increasing otherwise.

    Returns:
        The fitted values, same length as ``y``.
    """
    vals = np.asarray(y, dtype=np.float64)
    wts = np.asarray(w, dtype=np.float64)
    if vals.shape != wts.shape:
        raise ValueError(f"y and w differ in length: {vals.shape} vs {wts.shape}")
    if not increasing:
        return -isotonic_fit(-vals, wts, increasing=True)
    means: list[float] = []
    weights: list[float] = []
    counts: list[int] = []
    for v, wt in zip(vals, wts, strict=True):
        means.append(float(v))
        weights.append(float(wt))
        counts.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            m2, w2, c2 = means.pop(), weights.pop(), counts.pop()
            total = weights[-1] + w2
            means[-1] = (means[-1] * weights[-1] + m2 * w2) / total if total > 0 else (means[-1] + m2) / 2
            weights[-1] = total
            counts[-1] += c2
    return np.repeat(np.asarray(means), counts)


@dataclass(frozen=True, slots=True)
class FittedCurve:
    """A fitted progress curve: values at the observation days, plus any reversal."""

    days: tuple[date, ...]
    fitted: tuple[float, ...]
    sigma: tuple[float, ...]
    events: tuple[ProgressEvent, ...]
    #: The per-scene estimates the curve was fitted to, same order as ``days``.
    obs: tuple[float, ...] = ()

    def value(self, on: date) -> float | None:
        """Curve value on a day: linear between observations, held flat after the last one."""
        if not self.days or on < self.days[0]:
            return None
        x = np.array([d.toordinal() for d in self.days], dtype=np.float64)
        return float(np.interp(on.toordinal(), x, np.asarray(self.fitted)))

    def until(self, last: date) -> FittedCurve:
        """The curve as known on ``last``: its points up to that day, without reversal events."""
        keep = [k for k, d in enumerate(self.days) if d <= last]
        return FittedCurve(
            tuple(self.days[k] for k in keep),
            tuple(self.fitted[k] for k in keep),
            tuple(self.sigma[k] for k in keep),
            (),
            tuple(self.obs[k] for k in keep) if self.obs else (),
        )


def _weights(obs: Sequence[SceneProgress]) -> FloatArray:
    # Seen share and decisiveness both shrink an estimate's weight; floors keep weak scenes in play.
    return np.array([max(o.observed_fraction, 0.05) * max(o.confidence, 0.2) for o in obs], dtype=np.float64)


def local_linear(x: FloatArray, y: FloatArray, w: FloatArray, bandwidth: float) -> FloatArray:
    """Weighted local-linear smoother evaluated at ``x`` (Gaussian kernel, ``bandwidth`` in x units).

    Local-linear (not local-constant) so the newest value, the one that matters most, has no
    boundary bias.
    """
    out = np.empty_like(y)
    for i, x0 in enumerate(x):
        k = w * np.exp(-0.5 * ((x - x0) / bandwidth) ** 2)
        sw = k.sum()
        mx = (k * x).sum() / sw
        my = (k * y).sum() / sw
        sxx = (k * (x - mx) ** 2).sum()
        slope = (k * (x - mx) * (y - my)).sum() / sxx if sxx > 1e-9 else 0.0
        out[i] = my + slope * (x0 - mx)
    return out


def fit_curve(
    observations: Sequence[SceneProgress],
    options: CurveOptions | None = None,
    *,
    phantom_pp: float = 0.0,
    phantom_chance: float = 0.0,
) -> FittedCurve:
    """Fit a non-decreasing curve through per-scene estimates, keeping a sustained drop as an event.

    Scenes without an estimate are ignored. Estimates are smoothed (local-linear, weighted by how
    much each scene saw and how decisive the model was, with LOWESS robustness iterations so a
    scene misread by 15 pp, up or down, does not drag the curve), then made non-decreasing. When a
    split into "rising, then falling" explains the estimates much better than one rising curve,
    with the fall sustained over ``reversal_min_scenes`` scenes, the curve falls after the split
    and a ``reversal`` event is recorded.

    With ``phantom_pp`` and ``phantom_chance`` (one slab step of the site's buildings and the
    site's measured phantom-slab rate, :func:`site_reading_noise`), an estimate is also weighted
    by its chance of not being a phantom slab, one step above the smooth: the bisquare only partly
    discounts a 12.75 pp over-read, and phantoms on every third scene lifted the curve by about
    a point (1 pp mean error halved on the synthetic test). Not applied to a curve with a reversal.
    """
    opts = options or CurveOptions()
    obs = sorted((o for o in observations if o.percent is not None), key=lambda o: o.acquired_at_utc)
    if not obs:
        return FittedCurve((), (), (), ())
    days = tuple(o.acquired_at_utc.date() for o in obs)
    x = np.array([d.toordinal() for d in days], dtype=np.float64)
    y = np.array([float(o.percent) for o in obs if o.percent is not None])
    w = _weights(obs)
    w = w / w.max()
    seen = np.array([o.observed_fraction for o in obs], dtype=np.float64)
    found = _reversal_split(x, y, w, seen >= opts.stall_clear_seen, opts)
    events: tuple[ProgressEvent, ...] = ()
    w0 = w
    if found is None:
        w = w * robustness_weights(x, y, w, opts)
        if phantom_pp > 0.0 and phantom_chance > 0.0:
            w = w * _not_phantom(x, y, w, opts, phantom_pp, phantom_chance)
        fitted = np.clip(isotonic_fit(local_linear(x, y, w, opts.smooth_days), w), 0.0, 100.0)
    else:
        split, keep, drop = found
        w = w * keep
        w = (
            np.concatenate(
                [
                    robustness_weights(x[:split], y[:split], w[:split], opts),
                    robustness_weights(x[split:], y[split:], w[split:], opts),
                ]
            )
            * w
        )
        before = isotonic_fit(local_linear(x[:split], y[:split], w[:split], opts.smooth_days), w[:split])
        after = isotonic_fit(
            local_linear(x[split:], y[split:], w[split:], opts.smooth_days), w[split:], increasing=False
        )
        after = np.minimum(after, before[-1])
        fitted = np.clip(np.concatenate([before, after]), 0.0, 100.0)
        top, bottom = float(fitted[split - 1]), float(fitted[-1])
        # Date the event where the fall is under way (half the fall the test asked for), not where
        # the flat top that precedes it begins.
        falling = np.nonzero(fitted[split:] < top - drop / 2)[0]
        fell_on = days[split + int(falling[0])] if falling.size else days[split]
        events = (
            ProgressEvent(
                "reversal",
                fell_on,
                f"observed progress fell from {top:.0f} % to {bottom:.0f} % "
                "(demolition, or cleared ground returning to vegetation)",
                round(top - bottom, 1),
            ),
        )
    # A gross outlier (robustness weight under 1/4) gets a huge sigma, so it neither narrows the
    # band nor moves the stall test; ordinary scatter keeps its sigma.
    rob = w / np.maximum(w0, 1e-12)
    sigma = opts.noise_pp / np.sqrt(np.maximum(np.where(rob < 0.25, w, w0), 1e-6))
    return FittedCurve(
        days, tuple(float(v) for v in fitted), tuple(float(s) for s in sigma), events, tuple(float(v) for v in y)
    )


def _not_phantom(
    x: FloatArray, y: FloatArray, w: FloatArray, opts: CurveOptions, step: float, chance: float, iterations: int = 3
) -> FloatArray:
    """Chance that each estimate is not a phantom slab (one slab step, ``step`` pp, above the smooth)."""
    keep = np.ones_like(y)
    for _ in range(iterations):
        resid = y - local_linear(x, y, w * keep + 1e-9, opts.smooth_days)
        good = (1.0 - chance) * np.exp(-0.5 * (resid / opts.noise_pp) ** 2)
        ghost = chance * np.exp(-0.5 * ((resid - step) / opts.noise_pp) ** 2)
        keep = good / np.maximum(good + ghost, 1e-300)
        keep = np.where(good + ghost > 0, keep, 1.0)
    return keep


def robustness_weights(
    x: FloatArray, y: FloatArray, w: FloatArray, opts: CurveOptions, *, iterations: int = 3
) -> FloatArray:
    """LOWESS robustness weights (Cleveland 1979): bisquare of the residual from the smooth.

    The residual scale is six median absolute residuals, floored at ``3 * noise_pp`` so ordinary
    scatter is never down-weighted; a scene off by more than that scale gets weight 0.
    """
    rob = np.ones_like(y)
    if len(y) < 4:
        return rob
    for _ in range(iterations):
        resid = y - local_linear(x, y, w * rob + 1e-9, opts.smooth_days)
        scale = max(6.0 * float(np.median(np.abs(resid))), 3.0 * opts.noise_pp)
        u = np.clip(resid / scale, -1.0, 1.0)
        rob = (1.0 - u**2) ** 2
    return rob


def fill_unseen_phases(
    observations: Sequence[SceneProgress], phase_weights: Sequence[float], *, min_weight_seen: float = 0.6
) -> list[SceneProgress]:
    """Give a lower-bound estimate to scenes that saw most, but not all, of the footprints.

    A scene that saw too little of one phase (a bright new roof that the scene classification
    calls cloud, a cloud over one hall) has no percent of its own. When the phases it did see
    carry at least ``min_weight_seen`` of the plan's weight and every unseen phase was seen
    before, the unseen phases are taken at their latest seen share (construction does not go
    back, so this is a lower bound) and the scene enters the curve with its weight scaled by the
    seen share. The scene's own record is not changed; only the curve uses the filled value.

    Returns:
        The observations in time order, filled where possible.
    """
    total = float(sum(phase_weights)) or 1.0
    latest: list[float | None] = [None] * len(phase_weights)
    out: list[SceneProgress] = []
    for o in sorted(observations, key=lambda o: o.acquired_at_utc):
        fr = o.phase_fractions
        if o.percent is None and len(fr) == len(phase_weights):
            seen = sum(w for w, f in zip(phase_weights, fr, strict=True) if f is not None) / total
            known = [f if f is not None else prev for f, prev in zip(fr, latest, strict=True)]
            if seen >= min_weight_seen and seen < 1.0 and all(v is not None for v in known):
                pct = 100.0 * sum(w * (v or 0.0) for w, v in zip(phase_weights, known, strict=True)) / total
                o = replace(o, percent=round(pct, 3), observed_fraction=o.observed_fraction * seen)
        if len(fr) == len(latest):
            latest = [f if f is not None else prev for f, prev in zip(fr, latest, strict=True)]
        out.append(o)
    return out


def _reversal_split(
    x: FloatArray, y: FloatArray, w: FloatArray, clear: npt.NDArray[np.bool_], opts: CurveOptions
) -> tuple[int, FloatArray, float] | None:
    """Where a sustained fall starts, the weights to fit the curve with and the fall asked for; None without one.

    Each test is a penalised comparison of "rising" with "rising, then falling". The first takes
    the clear scenes, whose good readings scatter by ``stall_noise_pp``, less their misreads (a
    robust smooth at that scatter drops them), and asks for a fall of ``reversal_share`` of the
    level, at least ``reversal_floor_pp``, shown by the falling scenes themselves: a run of
    over-reads before them (earthworks read a slab step high) is no peak to fall from. Only where
    that asks for less than ``reversal_pp``, on sites whose clear readings stayed under a third
    (their 90th percentile): the smooth cannot follow a sharp corner and leaves out the good
    scenes near it, which would read a demolished building's peak low. The fall is then fitted on
    the scenes it kept, since the over-reads left out would hold a small site's fall up. Without
    such a fall, the second takes every scene, at the scatter of any reading (``noise_pp``), and
    asks for ``reversal_pp``: alone, that kept a cleared pad of 15 % growing back over unseen for
    two months (2203-0004 read 13 % with its pad at 4 %).
    """
    idx = np.nonzero(clear)[0]
    # Only for sites that never stood much above a pad: the smooth cannot follow a sharp corner,
    # and about a demolished building it leaves out the good scenes that show its peak.
    small = len(idx) > 0 and opts.reversal_share * float(np.quantile(y[idx], 0.9)) < opts.reversal_pp
    if small and len(idx) >= opts.reversal_min_scenes + 2:
        rob = robustness_weights(x[idx], y[idx], w[idx], replace(opts, noise_pp=opts.stall_noise_pp))
        idx = idx[rob >= 0.5]
        found = _split_search(y[idx], w[idx], opts, opts.stall_noise_pp, relative=True)
        if found is not None:
            split, drop = found
            # Scenes the smooth left out between the last kept one before the fall and the first
            # after it (partial views, the corner it cannot follow) go with the fall, where the
            # fit is capped at the level before it.
            start = int(idx[split - 1]) + 1
            keep = np.ones_like(w)
            keep[start:] = 1e-6
            keep[idx[idx >= start]] = 1.0
            return start, keep, drop
    plain = _split_search(y, w, opts, opts.noise_pp, relative=False)
    return None if plain is None else (plain[0], np.ones_like(w), plain[1])


def _split_search(
    y: FloatArray, w: FloatArray, opts: CurveOptions, noise: float, *, relative: bool
) -> tuple[int, float] | None:
    """The best "rising, then falling" split and the fall it asked for, if it beats "rising" by a BIC-like margin."""
    n = len(y)
    k = opts.reversal_min_scenes
    if n < k + 2:
        return None
    sse_up = float(np.sum(w * (y - isotonic_fit(y, w)) ** 2))
    best, best_sse, best_drop = None, math.inf, opts.reversal_pp
    for s in range(2, n - k + 1):
        a = isotonic_fit(y[:s], w[:s])
        b = isotonic_fit(y[s:], w[s:], increasing=False)
        drop = opts.reversal_pp
        if relative:
            drop = max(opts.reversal_floor_pp, opts.reversal_share * a[-1])
            if drop >= opts.reversal_pp or b[0] - b[-1] < drop:
                continue
        if int(np.sum(y[s:] < a[-1] - drop)) < k:
            continue
        sse = float(np.sum(w[:s] * (y[:s] - a) ** 2) + np.sum(w[s:] * (y[s:] - b) ** 2))
        if sse < best_sse:
            best, best_sse, best_drop = s, sse, drop
    # A split must pay for its extra freedom, in units of the readings' scatter.
    penalty = 2.0 * math.log(n) * noise**2 * k
    if best is None or sse_up - best_sse < penalty:
        return None
    return best, best_drop


def band_halfwidth(curve: FittedCurve, on: date, options: CurveOptions | None = None) -> float | None:
    """Half-width (pp) of the confidence band on a day.

    It combines the scenes near that day (inverse-variance, with a Gaussian kernel in time), so a
    cloudy stretch without usable scenes widens the band while the curve itself stays put.
    """
    opts = options or CurveOptions()
    if not curve.days or on < curve.days[0]:
        return None
    dt = np.array([(on - d).days for d in curve.days], dtype=np.float64)
    kernel = np.exp(-0.5 * (dt / opts.density_days) ** 2)
    info = float(np.sum(kernel / np.asarray(curve.sigma) ** 2))
    # A floor on information so a long gap gives a wide but finite band.
    return float(opts.band_z / math.sqrt(info + 1.0 / (4 * opts.noise_pp) ** 2))


def summarize(
    site_id: str,
    plan: Plan,
    observations: Sequence[SceneProgress],
    *,
    as_of: date,
    method: str,
    options: CurveOptions | None = None,
    activity: Sequence[SiteWork] = (),
) -> tuple[ProgressSummary, list[ProgressPoint]]:
    """Progress against plan on ``as_of`` and the curve at every observation day.

    Args:
        site_id: The site.
        plan: Its plan.
        observations: Per-scene estimates (with or without a value).
        as_of: The day of the figures.
        method: Which estimator produced the observations (recorded with the figures).
        options: Curve tuning.
        activity: The site's daily work from its sensors, if it has any: a second witness for
            the stall flag (:func:`idle_evidence`); days after ``as_of`` are ignored.

    Returns:
        The summary and the series (one point per scene day up to ``as_of``, then ``as_of``).
    """
    opts = options or CurveOptions()
    usable = [o for o in observations if o.acquired_at_utc.date() <= as_of]
    filled = fill_unseen_phases(usable, [p.weight for p in plan.phases])
    table = PlanCurves.of(plan)
    last_work = work_stopped(activity, as_of, opts)
    set_aside = lone_rise_after_stop(table, filled, last_work, opts)
    filled = [o for o in filled if all(o is not x for x in set_aside)]
    phantom = site_reading_noise(table, filled, as_of, opts)[4] if table.phantom_pp > 0.0 else 0.0
    curve = fit_curve(filled, opts, phantom_pp=table.phantom_pp, phantom_chance=phantom)
    planned_now = plan.planned_percent(as_of)
    aside = {o.scene_id for o in set_aside}
    used = sum(o.percent is not None and o.scene_id not in aside for o in usable)
    points = [_point(plan, curve, d, opts) for d in sorted(set(curve.days))]
    if curve.days and curve.days[-1] < as_of:
        points.append(_point(plan, curve, as_of, opts))
    observed = curve.value(as_of)
    outside = [
        o.outside_change_fraction for o in usable if o.percent is not None and o.outside_change_fraction is not None
    ]
    last = curve.days[-1] if curve.days else None
    if observed is None:
        summary = ProgressSummary(
            site_id, as_of, round(planned_now, 2), None, None, None, None, None, None, None, None, None,
            False, None, (), used, len(usable) - used, last, method,
        )  # fmt: skip
        return summary, points
    half = band_halfwidth(curve, as_of, opts) or 0.0
    rate = _rate(curve, as_of, opts.rate_window_days)
    seen = stall_evidence(table, curve, filled, as_of, opts)
    idle = idle_evidence(table, curve, filled, activity, as_of, opts)
    imagery_stalled = is_stalled(table, curve, filled, as_of, opts)
    witnesses = stall_witnesses(imagery_stalled, seen, idle, opts)
    stalled = bool(witnesses)
    stall_check = stall_check_of(stalled, seen, disputed=imagery_stalled and not stalled)
    stopped = idle_since(activity, as_of, opts)
    if stopped is not None and observed - (curve.value(stopped) or 0.0) > opts.noise_pp:
        stopped = None  # imagery saw the site go on after its sensors went quiet: a feed, not a stop
    best: tuple[float, float] | None = None  # the likeliest schedule (pace, delay), for plateaus
    # Fitted to the readings until the work stopped: those after it show the stop, not the pace.
    if opts.position_by_schedule and (warps := plan_warps(table, filled, stopped or as_of, opts)) is not None:
        k = int(warps[2].argmax())
        best = (float(warps[0][k]), float(warps[1][k]))
    # A stalled site is not moved on past its newest scene.
    undone = any(e.kind == "reversal" for e in curve.events)
    position = plan_position(
        table, curve, as_of, opts, project=not stalled, idle_since=stopped, schedule=best, undone=undone
    )
    # Each finish date is late in its own way: the curve's after low scatter holds it under the
    # completion level, the readings' after a cloudy month (the curve interpolates across it).
    finish_dates = [d for d in (finish_day(filled, as_of, opts), _finished_on(curve, opts.complete_pct)) if d]
    finished_on = min(finish_dates) if finish_dates else None
    if finished_on is not None:
        pace = best[0] if best is not None else 1.0
        finished_on = sensor_finish(plan, curve, activity, finished_on, as_of, opts, pace) or finished_on
    if position is None:  # unreachable: the curve has a value on as_of
        raise RuntimeError("no plan position for an observed curve")
    scene_days = sorted({o.acquired_at_utc.date() for o in filled if o.percent is not None})
    slip, slip_low, slip_high = _slip_from_position(
        plan, table, position, as_of, finished_on, opts.complete_pct, scene_days
    )
    early, mid, late = (None, None, None) if stalled else _forecast(curve, as_of, observed, opts)
    summary = ProgressSummary(
        site_id=site_id,
        as_of=as_of,
        planned_pct=round(planned_now, 2),
        observed_pct=round(observed, 2),
        lower_pct=round(max(0.0, observed - half), 2),
        upper_pct=round(min(100.0, observed + half), 2),
        deviation_pp=round(observed - planned_now, 2),
        slip_days=slip,
        rate_pp_per_week=None if rate is None else round(rate, 3),
        forecast_completion=mid,
        forecast_early=early,
        forecast_late=late,
        stalled=stalled,
        outside_activity_pct=round(100.0 * float(np.median(outside[-3:])), 2) if outside else None,
        events=curve.events + tuple(_set_aside_event(o, last_work) for o in set_aside),
        scenes_used=used,
        scenes_skipped=len(usable) - used,
        last_observation=last,
        method=method,
        slip_low_days=slip_low,
        slip_high_days=slip_high,
        stall_check=stall_check,
        stall_witnesses=witnesses,
    )
    return summary, points


def work_stopped(activity: Sequence[SiteWork], as_of: date, opts: CurveOptions) -> date | None:
    """The day after the site's sensors last reported work, if idle reports have covered the days since.

    Looser than :func:`idle_since` (no ``idle_days`` minimum, one busy day ends the stretch): it
    dates the last work, for telling which readings the work could have made. At least a week of
    days since, and ``idle_min_reported`` of them reported idle (silence is a gap, not a stop).
    """
    days = sorted((w for w in activity if w.day <= as_of and w.level is not None), key=lambda w: w.day)
    last = _last_working_day(days, opts)
    if last is None or (as_of - last).days < 7:
        return None
    quiet = sum(1 for w in days if w.day > last)
    return last + timedelta(days=1) if quiet >= opts.idle_min_reported * (as_of - last).days else None


def _last_working_day(days: Sequence[SiteWork], opts: CurveOptions) -> date | None:
    """The newest of ``days`` (in time order) that reported work above ``idle_level``."""
    return next((w.day for w in reversed(days) if w.level is not None and w.level > opts.idle_level), None)


def lone_rise_after_stop(
    table: PlanCurves, observations: Sequence[SceneProgress], stopped: date | None, opts: CurveOptions
) -> tuple[SceneProgress, ...]:
    """The readings after a stop that the work before it cannot explain, if they all come from one day.

    Sensors that report idle day after day since ``stopped`` (:func:`work_stopped`) say nobody
    worked since. Where the site stood that day is bounded by its own schedules fitted to the
    readings until then (:func:`plan_warps`): the highest visible level any of them reaches on
    ``stopped``, so the work of a cloudy month before the stop is allowed for. A reading more than
    ``noise_pp`` above that is a misread (a roof read at twice its share on a partial view) while
    it stands alone, and is left out until a scene on another day confirms it; two days that do
    mean the feed is wrong, and the imagery is trusted as before.
    """
    if stopped is None:
        return ()
    warps = plan_warps(table, observations, stopped, opts)
    if warps is None:
        return ()
    pace, delay, _ = warps
    highest = float(table.visible_on_schedule(pace, delay, np.array([(stopped - table.origin).days], float)).max())
    rises = [
        o
        for o in observations
        if o.percent is not None and o.acquired_at_utc.date() > stopped and o.percent > highest + opts.noise_pp
    ]
    # One scene's day: two scenes of the same pass (two providers, two tiles) are one look.
    return tuple(rises) if len({o.acquired_at_utc.date() for o in rises}) == 1 else ()


def _set_aside_event(reading: SceneProgress, stopped: date | None) -> ProgressEvent:
    return ProgressEvent(
        "set_aside",
        reading.acquired_at_utc.date(),
        f"scene {reading.scene_id} read {reading.percent:.1f} % while the site's sensors stood idle since "
        f"{stopped}: left out of the curve until another scene confirms it",
        0.0,
    )


def _point(plan: Plan, curve: FittedCurve, on: date, opts: CurveOptions) -> ProgressPoint:
    v = curve.value(on) or 0.0
    half = band_halfwidth(curve, on, opts) or 0.0
    return ProgressPoint(
        on,
        round(plan.planned_percent(on), 2),
        round(v, 2),
        round(max(0.0, v - half), 2),
        round(min(100.0, v + half), 2),
    )


def finish_day(observations: Sequence[SceneProgress], as_of: date, opts: CurveOptions) -> date | None:
    """The first scene day from which a site reads finished, robust to the low scatter of finished sites.

    Estimates of a finished site scatter *below* 100 (a roof in shadow, a corner under cloud), so
    the fitted curve, a weighted mean, can sit under ``complete_pct`` for months after the site
    finished. Here a site is finished from scene day ``d`` when the ``finish_quantile`` of the
    readings in the ``finish_window_days`` centred on ``d``, and of all readings from ``d`` to
    ``as_of``, are both at or above ``complete_pct``, with at least ``finish_min_scenes`` in each.

    Partial views are the exception to "below, never above": cloud over the unbuilt part of a
    footprint reads the rest as the whole, so two partial scenes can read an 83 % site finished.
    Where the window holds scenes that saw ``finish_clear_seen`` of the footprints or more, one of
    them must read within ``noise_pp`` of complete as well, or within ``finish_shade_pp`` when it
    is the only one (a roof in shadow).

    Returns:
        The day, or None when the readings do not say finished.
    """
    known = sorted(
        (o.acquired_at_utc.date(), float(o.percent), o.observed_fraction >= opts.finish_clear_seen)
        for o in observations
        if o.percent is not None and o.acquired_at_utc.date() <= as_of
    )
    days = [d for d, _, _ in known]
    vals = np.array([v for _, v, _ in known], dtype=np.float64)
    clear = np.array([c for _, _, c in known], dtype=bool)

    def says_finished(sel: npt.NDArray[np.bool_]) -> bool:
        return bool(np.quantile(vals[sel], opts.finish_quantile) >= opts.complete_pct)

    for k, day in enumerate(days):
        # Centred, so a window straddling the finish does not date it early on a rising site.
        near = np.array([abs((d - day).days) <= opts.finish_window_days / 2 for d in days], dtype=bool)
        tail = np.arange(len(days)) >= k
        if int(tail.sum()) < opts.finish_min_scenes:
            return None
        near_clear = vals[near & clear]
        best_clear = float(near_clear.max()) if near_clear.size else math.inf
        # One well-seen view may be a roof in shadow (``finish_shade_pp`` low); two are not.
        clear_agrees = best_clear >= opts.complete_pct - (
            opts.finish_shade_pp if near_clear.size == 1 else opts.noise_pp
        )
        if int(near.sum()) >= opts.finish_min_scenes and clear_agrees and says_finished(near) and says_finished(tail):
            return day
    return None


def work_ended(activity: Sequence[SiteWork], as_of: date, opts: CurveOptions) -> date | None:
    """The day after the site's sensors last reported work, if only idle days or silence followed for ``idle_days``.

    Silence counts here (unlike in :func:`idle_since`): a finished site's sensors are taken away
    some weeks after its crews left. At least a week of idle reports must follow the last working
    day, so a feed that broke mid-work does not end the work.
    """
    days = sorted((w for w in activity if w.day <= as_of), key=lambda w: w.day)
    last = _last_working_day(days, opts)
    if last is None or (as_of - last).days < opts.idle_days:
        return None
    quiet = sum(1 for w in days if w.day > last and w.level is not None)
    return last + timedelta(days=1) if quiet >= 7 else None


def sensor_finish(
    plan: Plan,
    curve: FittedCurve,
    activity: Sequence[SiteWork],
    imagery_finish: date,
    as_of: date,
    opts: CurveOptions,
    pace: float = 1.0,
) -> date | None:
    """The day a site that reads finished reached ``complete_pct``, dated by its sensors; None if they cannot.

    Imagery dates a finish late: finished sites read a few points under 100 now and then, so the
    readings say "finished" only weeks after the work did. The crews leave when the work is done
    (:func:`work_ended`); if the curve was then within its band and one reading's noise
    (``noise_pp``) of complete, the site reached ``complete_pct`` the time the plan gives its last
    ``100 - complete_pct`` points earlier, at the site's ``pace`` (plan days per day: its schedule,
    :func:`plan_warps`). A site that stopped short reads further below, and one whose curve climbed
    by more than that noise after the crews left resumed work unmonitored.
    """
    ended = work_ended(activity, as_of, opts)
    if ended is None:
        return None
    reached, end = plan.date_for_percent(opts.complete_pct), plan.date_for_percent(100.0)
    # The plan's last points at the site's own pace (plan days per day).
    last_points = (
        round((end - reached).days / max(pace, opts.min_pace)) if reached is not None and end is not None else 0
    )
    # Only ever earlier than the imagery's date: crews can leave after the site reached
    # ``complete_pct`` (they finish the last points), so it is the day they imply that counts.
    if ended - timedelta(days=last_points) > imagery_finish:
        return None
    level, then = curve.value(ended), curve.value(imagery_finish)
    # Within a reading's noise of complete: the curve trails a finish by a few points (above).
    if level is None or level + (band_halfwidth(curve, ended, opts) or 0.0) < opts.complete_pct - opts.noise_pp:
        return None
    # And no more than that after: a curve that climbed on after the crews left shows work that
    # resumed unmonitored, so they left a stop, not a finished site.
    if then is None or then - level > opts.noise_pp:
        return None
    return ended - timedelta(days=last_points)


def _finished_on(curve: FittedCurve, complete_pct: float) -> date | None:
    """The day the curve reached ``complete_pct``, interpolated between the scenes around it.

    Not the first scene day at or above it: after a cloudy month, that day can be weeks after the
    site finished, and a finished site keeps the slip it finished with.
    """
    for k, (d, v) in enumerate(zip(curve.days, curve.fitted, strict=True)):
        if v >= complete_pct:
            if k == 0 or curve.fitted[k - 1] >= v:
                return d
            prev, before = curve.days[k - 1], curve.fitted[k - 1]
            share = (complete_pct - before) / (v - before)
            return prev + timedelta(days=round(share * (d - prev).days))
    return None


def plan_days_for_percent(plan: Plan, percent: float) -> tuple[date, date] | None:
    """The plan days on which the plan stands at ``percent``: (earliest, latest).

    Where the plan rises through ``percent`` both are the day it gets there. Where the plan is
    flat at exactly ``percent`` (a pause between phases), the range spans the pause. None when the
    plan never reaches ``percent``.
    """
    return PlanCurves.of(plan).days_for_percent(percent)


def slip_days(
    plan: Plan, observed: float, as_of: date, finished_on: date | None = None, *, complete_pct: float = 100.0
) -> int:
    """Earned schedule: days between today and the plan day that expected today's progress.

    The plan day is the one closest to today among the days on which the plan stood at the
    observed percent (:func:`plan_days_for_percent`), so a site that sits at a planned pause on
    schedule has no slip, and one that is still there after the pause has ended is late by the
    days since the plan expected more. Negative when ahead.

    Once a site is complete, "today" becomes the day it reached ``complete_pct``, compared with the
    day the plan did, so a finished site keeps the slip it finished with instead of growing a day
    every day, and one that followed its plan to the end has none.

    Args:
        plan: The site's plan.
        observed: Percent complete, 0-100.
        as_of: Today.
        finished_on: The day the site reached ``complete_pct``, if it has.
        complete_pct: The percent that counts as complete (the plan's day for it is the planned
            finish).

    Returns:
        Slip in days, positive when behind plan.
    """
    if finished_on is not None:
        planned_end = plan.date_for_percent(complete_pct) or plan.end
        return (finished_on - planned_end).days
    if observed <= 0.0:
        # The plan stood at 0 % until the end of the day before its start.
        return max(0, (as_of - plan.start).days + 1)
    days = plan_days_for_percent(plan, min(observed, 100.0))
    if days is None:
        return 0
    earliest, latest = days
    return (as_of - min(max(as_of, earliest), latest)).days


#: Share of a building's schedule on a cleared pad that shows nothing from space (set-up,
#: excavation, formwork) before slabs appear: the estimator's ladder (``BuildLadder.slab_from``).
INVISIBLE_START = BuildLadder().slab_from


@dataclass(frozen=True, slots=True)
class PlanCurves:
    """A plan tabulated per day: planned percent and the percent imagery can see.

    Index 0 is the day before the plan starts (0 %); the last index is the plan's end.

    Attributes:
        origin: The day of index 0.
        planned: (days,) planned percent complete, 0-100.
        visible: (days,) what the estimator reads of a site that follows the plan exactly: a
            building on a cleared pad reads nothing until its slabs show (the first
            ``INVISIBLE_START`` of its schedule), then its planned share (the ladder's inversion).
        phantom_pp: One slab step of the site's buildings (``INVISIBLE_START`` of their weights,
            in pp): how far a "phantom slab" misread (a building read as showing slabs it does
            not have yet) sits above the truth. 0 for milestone plans and sites without buildings.
    """

    origin: date
    planned: FloatArray
    visible: FloatArray
    phantom_pp: float = 0.0

    @classmethod
    def of(cls, plan: Plan) -> PlanCurves:
        """Tabulate ``plan`` from the day before its start to its end."""
        origin = plan.start - timedelta(days=1)
        days = [origin + timedelta(days=k) for k in range((plan.end - origin).days + 1)]
        planned = np.array([plan.planned_percent(d) for d in days], dtype=np.float64)
        if plan.milestones:
            return cls(origin, planned, planned.copy())
        total = sum(p.weight for p in plan.phases) or 1.0
        visible = np.zeros(len(days), dtype=np.float64)
        buildings = 0.0
        for k, phase in enumerate(plan.phases):
            f = np.array([phase.planned_fraction(d) for d in days], dtype=np.float64)
            if builds_on_pad(plan, k):
                f = np.where(f >= INVISIBLE_START, f, 0.0)
                buildings += phase.weight
            visible += phase.weight * f
        return cls(origin, planned, 100.0 * visible / total, 100.0 * INVISIBLE_START * buildings / total)

    def visible_on_schedule(self, pace: npt.ArrayLike, delay: npt.ArrayLike, t: FloatArray) -> FloatArray:
        """Visible percent at days ``t`` (since ``origin``) on a schedule of the plan.

        The schedule starts ``delay`` days late and runs at ``pace`` plan days per day; ``pace``
        and ``delay`` broadcast against ``t``.
        """
        grid = np.arange(len(self.visible), dtype=np.float64)
        index = np.clip(np.asarray(pace) * (t - np.asarray(delay)), 0.0, grid[-1])
        return np.asarray(np.interp(index, grid, self.visible), dtype=np.float64)

    def index(self, on: date) -> int:
        """Index of a day, clipped to the table."""
        return int(np.clip((on - self.origin).days, 0, len(self.planned) - 1))

    def day(self, index: float) -> date:
        """The day at a (possibly fractional) index, rounded to whole days."""
        return self.origin + timedelta(days=round(index))

    def days_for_percent(self, percent: float) -> tuple[date, date] | None:
        """(earliest, latest) plan day at ``percent`` (see :func:`plan_days_for_percent`)."""
        lo, hi = _level_set(self.planned, percent, 1e-9)
        if lo is None:
            return None
        return self.day(lo), self.day(hi)


def _level_set(values: FloatArray, level: float, tol: float) -> tuple[int | None, int]:
    """(first, last) index where a non-decreasing table is within ``tol`` of ``level``.

    Where the table jumps over the level, both are the first index past it; (None, last) when
    the table never gets there.
    """
    first = int(np.searchsorted(values, level - tol, side="left"))
    if first >= len(values):
        return None, len(values) - 1
    last = int(np.searchsorted(values, level + tol, side="right")) - 1
    return first, max(first, last)


@dataclass(frozen=True, slots=True)
class PlanPosition:
    """Where on its plan a site stands: the plan day its observed progress corresponds to.

    Attributes:
        index: Best estimate, as a :class:`PlanCurves` index.
        earliest: Earliest index consistent with the confidence band.
        latest: Latest index consistent with the confidence band.
        pace: Plan days per calendar day the site kept to get where it is.
    """

    index: float
    earliest: int
    latest: int
    pace: float


def plan_position(
    table: PlanCurves,
    curve: FittedCurve,
    on: date,
    options: CurveOptions | None = None,
    *,
    project: bool = True,
    level: float | None = None,
    entered: date | None = None,
    idle_since: date | None = None,
    schedule: tuple[float, float] | None = None,
    undone: bool = False,
) -> PlanPosition | None:
    """Date a site's observed progress on its plan, robust where the plan is flat.

    Observed progress is compared with the *visible* plan (what imagery can see of a site that
    follows the plan), so invisible work neither reads as slip nor is claimed. Where the visible
    plan is flat around the observed level (a pause between phases, or buildings not yet showing),
    every day of that plateau fits; the site is placed by its own pace instead: it entered the
    plateau when its curve reached the level, and moves through it at the pace (plan days per
    day) it kept until then. The band gives the earliest and latest plan day consistent with it.

    After the newest scene (a cloudy end of the record), the site is moved on from where that
    scene placed it at the same pace when ``project`` is set; the band then reaches back to the
    newest scene's position (no progress since).

    ``level`` replaces the curve's value as the observed progress to place, and ``entered`` the
    day the curve reached it (the stall test passes both, taken robustly from the raw estimates).

    ``schedule`` (pace, delay: the site's own schedule, :func:`plan_warps`) places the site on a
    plateau instead of the pace from where the curve entered it.

    ``idle_since`` (the site's sensors idle from that day on, :func:`idle_since`) stops the
    moving on where the work stopped; a site that stopped at a level the plan itself holds for a
    while (a planned pause) is on plan until the plan leaves that level.

    ``undone`` (the curve fell: a reversal) places the site where the nominal plan stands at its
    level: work that was undone is not hidden work in progress, so a cancelled pad back to
    vegetation stands where its plan started, and a building demolished to its pad where the plan
    leaves the pad, not where the visible plan would first have shown either.

    Returns:
        The position, or None before the first observation.
    """
    opts = options or CurveOptions()
    if project and curve.days and on > curve.days[-1]:
        newest = plan_position(
            table, curve, curve.days[-1], opts, project=False, level=level, entered=entered, idle_since=idle_since,
            schedule=schedule, undone=undone,
        )  # fmt: skip
        if newest is None:
            return None
        if undone:  # undone work is not resumed after the newest scene
            return newest
        moved = min(newest.index + newest.pace * (on - curve.days[-1]).days, float(len(table.visible) - 1))
        if idle_since is not None and idle_since < on:
            worked = newest.index + newest.pace * max((idle_since - curve.days[-1]).days, 0)
            newest_level = level if level is not None else curve.value(curve.days[-1])
            moved = min(moved, max(worked, _waiting_at(table, newest_level, opts)))
        return PlanPosition(moved, newest.earliest, max(newest.latest, math.ceil(moved)), newest.pace)
    if level is None:
        level = curve.value(on)
    if level is None or not curve.days or on < curve.days[0]:
        return None
    half = band_halfwidth(curve, on, opts) or 0.0
    first, last = _level_set(table.visible, level, opts.level_tol_pp)
    n = len(table.visible) - 1
    if first is None:  # above anything the plan shows (over-read near the end): the end
        return PlanPosition(float(n), n, n, 1.0)
    # When the curve entered this level, and the pace that brought it there.
    if entered is None:
        entered = next(
            (d for d, v in zip(curve.days, curve.fitted, strict=True) if v >= level - opts.level_tol_pp and d <= on), on
        )
    elapsed = (entered - table.origin).days
    pace = first / elapsed if elapsed > 0 and first > 0 else 1.0
    pace = float(np.clip(pace, opts.min_pace, opts.max_pace))
    index = float(np.clip(first + pace * (on - entered).days, first, last))
    delay: float | None = None  # set when the site's own schedule places it
    if schedule is not None and last > first:
        pace, delay = schedule
        index = float(np.clip(pace * ((on - table.origin).days - delay), first, last))
    if idle_since is not None and idle_since < on:
        # Where the work stopped, on the same clock that placed the site: its own schedule when
        # given, else the pace from the day the curve entered the level.
        if delay is not None:
            stopped = float(np.clip(pace * ((idle_since - table.origin).days - delay), first, last))
        else:
            stopped = float(np.clip(first + pace * max((idle_since - entered).days, 0), first, last))
        index = min(index, max(stopped, _waiting_at(table, level, opts)))
    if undone:
        # Where the nominal plan stands at the level (the end of a pause it holds), and ground
        # back to bare (within the level tolerance) at the plan's start.
        index = 0.0 if level <= opts.level_tol_pp else _waiting_at(table, level, opts)
    lo, _ = _level_set(table.visible, max(level - half, 0.0), opts.level_tol_pp)
    hi_first, hi = _level_set(table.visible, min(level + half, 100.0), opts.level_tol_pp)
    earliest = min(first, lo if lo is not None else first, math.floor(index))
    latest = max(last, hi if hi_first is not None else n)
    return PlanPosition(index, earliest, latest, pace)


def _waiting_at(table: PlanCurves, level: float | None, opts: CurveOptions) -> float:
    """The last plan index at which the (nominal) plan still stands at ``level`` (0 without a level).

    How far along its plan a site that stopped at that level is: waiting out a pause is on plan.

    "At" is within one sigma of a good clear reading (``stall_noise_pp``): with the looser
    ``level_tol_pp`` a site stopped 1.6 pp short of a pause read as waiting it out (seed 601).
    """
    if level is None:
        return 0.0
    _, last = _level_set(table.planned, level, opts.stall_noise_pp)
    return float(last)


def idle_since(activity: Sequence[SiteWork], as_of: date, opts: CurveOptions) -> date | None:
    """First day of the site's sensors' current idle stretch, if it has lasted ``idle_days``.

    The stretch runs back from ``as_of`` to the last day that reported work above ``idle_level``
    (gap days do not end it, but at least ``idle_min_reported`` of its days must have reported).
    """
    days = sorted((w for w in activity if w.day <= as_of), key=lambda w: w.day, reverse=True)
    first: date | None = None
    reported = 0
    for w in days:
        if w.level is None:
            continue
        if w.level > opts.idle_level:
            break
        first, reported = w.day, reported + 1
    if first is None or (as_of - first).days + 1 < opts.idle_days:
        return None
    if reported < opts.idle_min_reported * ((as_of - first).days + 1):
        return None
    return first


def _slip_from_position(
    plan: Plan,
    table: PlanCurves,
    pos: PlanPosition,
    as_of: date,
    finished_on: date | None,
    complete_pct: float,
    scene_days: Sequence[date] = (),
) -> tuple[int, int, int]:
    """(slip, low, high) in days from a plan position, by :func:`slip_days` on the implied percent.

    A finished site's range spans the scene days around its finish date (``scene_days``: days with
    a reading): the finish is known no better than the looks that bracket it.
    """
    if finished_on is not None:
        before = max((d for d in scene_days if d < finished_on), default=finished_on)
        after = min((d for d in scene_days if d > finished_on), default=finished_on)
        s, low, high = (
            slip_days(plan, 100.0, as_of, d, complete_pct=complete_pct) for d in (finished_on, before, after)
        )
        return s, min(s, low), max(s, high)

    def at(index: float) -> int:
        return slip_days(plan, float(table.planned[round(index)]), as_of)

    s = at(pos.index)
    return s, min(s, at(pos.latest)), max(s, at(pos.earliest))


def _rate(curve: FittedCurve, as_of: date, window_days: int) -> float | None:
    now = curve.value(as_of)
    start = max(curve.days[0], as_of - timedelta(days=window_days))
    then = curve.value(start)
    span = (as_of - start).days
    if now is None or then is None or span <= 0:
        return None
    return (now - then) / span * 7.0


def _forecast(
    curve: FittedCurve, as_of: date, observed: float, opts: CurveOptions
) -> tuple[date | None, date | None, date | None]:
    """(early, central, late) completion at the recent rates; late is None when a window shows no progress."""
    if observed >= opts.complete_pct:
        done = _finished_on(curve, opts.complete_pct) or as_of
        return done, done, done
    central_rate = _rate(curve, as_of, opts.rate_window_days)
    if curve.events or central_rate is None or central_rate <= 0.05:
        return None, None, None
    rates = [
        _rate(curve, as_of, w) for w in (opts.rate_window_days // 2, opts.rate_window_days, 2 * opts.rate_window_days)
    ]
    known = [r for r in rates if r is not None]
    remaining = 100.0 - observed

    def at(rate: float) -> date:
        return as_of + timedelta(days=round(remaining / rate * 7.0))

    fastest, slowest = max(known), min(known)
    late = at(slowest) if slowest > 0.05 else None
    return at(max(fastest, central_rate)), at(central_rate), late


@dataclass(frozen=True, slots=True)
class StallEvidence:
    """The stall test's verdict on one day, with what it rests on.

    Attributes:
        verdict: ``"stalled"``; ``"moving"``; ``"not_expected"`` (the plan, at the site's pace,
            expects less than ``stall_planned_pp`` of visible progress in the window, or the site
            is complete); ``"insufficient"`` (too few scenes in the window, or the site not
            watched long enough, to tell).
        expected_pp: Visible progress the plan expects over the window at the site's pace.
        log_ratio: ln(likelihood of "stopped" / likelihood of "moving"); None without a test.
        scenes: Scenes with an estimate in the window.
        clear_scenes: Those that saw at least ``stall_clear_seen`` of the footprints.
    """

    verdict: Literal["stalled", "moving", "not_expected", "insufficient"]
    expected_pp: float
    log_ratio: float | None
    scenes: int
    clear_scenes: int
    widened: bool = False


def stall_evidence(
    table: PlanCurves,
    curve: FittedCurve,
    observations: Sequence[SceneProgress],
    as_of: date,
    options: CurveOptions | None = None,
    *,
    widened: bool = False,
) -> StallEvidence:
    """Whether a site has stopped: a likelihood ratio of "stopped" against "moving" on the raw estimates.

    The per-scene estimates of the last ``stall_days`` (the window) and of the ``stall_days``
    before it (the run-up) are compared with two trajectories. Both share a free level at the
    window's start and a free straight run-up into it, so the run-up anchors the level (a stop
    right after steady progress is seen sooner than within the window alone). Inside the window,
    "stopped" stays flat; "moving" follows the visible plan from where the site stood at the
    window's start (:func:`window_start_position`), at ``stall_slow_fraction`` of the pace it
    kept until then (slow, but moving: a step of the visible plan, such as slabs showing, arrives
    later rather than half as high). The plan must expect at least ``stall_planned_pp`` of
    visible progress by the newest scene in the window: what it expects after the last look
    cannot be missing from the readings yet.

    Each estimate's likelihood is a mixture: within the scatter of a good reading of the
    trajectory, or misread (uniform over 60 pp), with a scatter and a chance of misreading that
    depend on how much of the footprints the scene saw. Both are fitted by EM. A building that
    flickers in and out of view (readings 10-20 pp off) then neither fakes a stall nor hides one.

    Args:
        table: The site's plan, tabulated.
        curve: The fitted curve (places the site on its plan at the window's start).
        observations: The per-scene estimates the curve was fitted to (any order; those without a
            value are ignored).
        as_of: The day of the verdict.
        options: Tuning.
        widened: Set on the second look, over twice the window, when the first found fewer than
            ``stall_min_scenes`` scenes; with too few there too, the evidence is insufficient.

    Returns:
        The verdict and what it rests on.
    """
    opts = options or CurveOptions()
    start = as_of - timedelta(days=opts.stall_days)
    if not curve.days or curve.days[0] > start - timedelta(days=opts.stall_days // 2):
        return StallEvidence("insufficient", 0.0, None, 0, 0)  # not watched long enough to say
    recent = sorted(
        (
            o
            for o in observations
            if o.percent is not None and start - timedelta(days=opts.stall_days) < o.acquired_at_utc.date() <= as_of
        ),
        key=lambda o: o.acquired_at_utc,
    )
    x = np.array([(o.acquired_at_utc.date() - start).days for o in recent], dtype=np.float64)
    seen = np.array([o.observed_fraction for o in recent], dtype=np.float64)
    in_window = x > 0
    scenes = int(in_window.sum())
    clear = int((in_window & (seen >= opts.stall_clear_seen)).sum())
    # Expected visible progress over the window, at the site's own pace from where it stood.
    history = curve.until(start)
    y = np.array([float(o.percent or 0.0) for o in recent], dtype=np.float64)
    is_clear = seen >= opts.stall_clear_seen
    # Scatter and misread chances of this site's readings, measured on its history.
    sigma_clear, sigma_partial, out_clear, out_partial, ph_clear, ph_partial = site_reading_noise(
        table, observations, start, opts
    )
    noise = np.where(is_clear, sigma_clear, sigma_partial)
    p_out = np.where(is_clear, out_clear, out_partial)
    p_phantom = np.where(is_clear, ph_clear, ph_partial)
    design = np.column_stack([np.ones_like(x), np.minimum(x, 0.0)])
    # Partial scenes that saw the same share of the footprints (a swath edge, a recurring shadow)
    # saw the same part and share its bias: each such view gets its own offset, so their readings
    # inform the trajectory's shape but not its level. A view seen once says nothing here.
    views = _partial_views(seen, opts)
    if views.shape[1]:
        design = np.column_stack([design, views])
    start_pos = window_start_position(table, history, observations, start, opts)
    if start_pos is None:
        return StallEvidence("not_expected", 0.0, None, scenes, clear)
    level0, pos = start_pos
    # The evidence reaches the newest scene in the window, not ``as_of``: what the plan expects
    # after the last look cannot be missing from the readings yet.
    last = float(x[in_window].max()) if scenes else float(opts.stall_days)
    expected = float(_expected_visible(table, pos, np.array([last]))[0])
    # "Moving" is the site going on at ``stall_slow_fraction`` of its own *pace* (plan days per
    # day), so a step in the visible plan (slabs showing) arrives later, not half as high.
    slow = _expected_visible(table, pos, x, opts.stall_slow_fraction)
    if start > table.day(len(table.visible) - 1):
        # The plan has ended with the site unfinished: it expects the rest, at no less than the
        # stall threshold's pace.
        expected = max(expected, 100.0 - level0)
        slow = opts.stall_slow_fraction * np.maximum(x, 0.0) * opts.stall_planned_pp / opts.stall_days
    if expected < opts.stall_planned_pp:
        return StallEvidence("not_expected", round(expected, 2), None, scenes, clear)
    # Only clear scenes make a window eligible: counting recurring partial views too flagged a site
    # six months before it stopped (seed 501) on a window of partial scenes alone.
    if scenes < opts.stall_min_scenes or clear < opts.stall_min_clear:
        if not widened:
            # A cloudy month: look back twice as far. A stop months old is still a stop, and the
            # plan's expectation grows with the window, so the comparison stays fair.
            wide = replace(opts, stall_days=2 * opts.stall_days)
            return stall_evidence(table, curve, observations, as_of, wide, widened=True)
        return StallEvidence("insufficient", round(expected, 2), None, scenes, clear)
    step = table.phantom_pp
    flat, _ = _mixture_fit(y, design, np.zeros_like(y), noise, p_out, phantom_pp=step, p_phantom=p_phantom)
    moving, _ = _mixture_fit(y, design, slow, noise, p_out, phantom_pp=step, p_phantom=p_phantom)
    ratio = flat - moving
    # Strictly greater: where both trajectories fit the readings alike there is no evidence of a stop.
    verdict: Literal["stalled", "moving"] = "stalled" if ratio > opts.stall_log_ratio else "moving"
    return StallEvidence(verdict, round(expected, 2), round(ratio, 3), scenes, clear, widened)


def _partial_views(seen: FloatArray, opts: CurveOptions) -> FloatArray:
    """(n, views) indicators of recurring partial views: partial scenes within ``view_tol`` of each other's seen share.

    A partial scene whose seen share no other scene shares is in no column (its own offset would
    absorb it entirely, so it is left to the mixture's misread term instead, as before).
    """
    partial = seen < opts.stall_clear_seen
    order = np.argsort(seen)
    groups: list[list[int]] = []
    for i in order:
        if not partial[i]:
            continue
        if groups and seen[i] - seen[groups[-1][-1]] <= opts.view_tol:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    cols = [np.isin(np.arange(len(seen)), g).astype(np.float64) for g in groups if len(g) >= 2]
    return np.column_stack(cols) if cols else np.zeros((len(seen), 0))


def window_start_position(
    table: PlanCurves,
    history: FittedCurve,
    observations: Sequence[SceneProgress],
    start: date,
    opts: CurveOptions,
) -> tuple[float, PlanPosition] | None:
    """Where a site stood at the start of a stall window: (level in pp, plan position).

    The position comes from the site's own schedule, fitted to the raw estimates up to ``start``
    (:func:`plan_warps`): the visible plan, shifted by a delay and run at a pace, read through the
    good-reading/misread mixture. Not the fitted curve, which upward misreads (a building
    flickering into view) push forward, placing the site past a plateau of the visible plan and
    making it expect a jump it has not reached. Of the schedules the readings cannot tell apart
    (the likelihood region), the one that expects the *least* visible progress over the window is
    taken, so "the plan expects progress" holds for every schedule the readings allow.

    The level is a robust constant through the estimates of the ``stall_days`` before ``start``
    (the fitted curve's value when there are fewer than two).

    Returns:
        None when the site cannot be placed (no history) or is complete.
    """
    runup = [
        o
        for o in observations
        if o.percent is not None and start - timedelta(days=opts.stall_days) < o.acquired_at_utc.date() <= start
    ]
    level0 = history.value(start)
    if len(runup) >= 2:
        y = np.array([float(o.percent or 0.0) for o in runup], dtype=np.float64)
        noise, p_out = _reading_noise(runup, opts)
        _, beta = _mixture_fit(y, np.ones((len(y), 1)), np.zeros_like(y), noise, p_out)
        level0 = float(np.clip(beta[0], 0.0, 100.0))
    if level0 is None or level0 >= opts.complete_pct:
        return None
    warps = plan_warps(table, observations, start, opts)
    if warps is None:
        return None
    pace, delay, _ = warps
    index = np.clip(pace * ((start - table.origin).days - delay), 0.0, len(table.visible) - 1)
    grid = np.arange(len(table.visible), dtype=np.float64)
    ahead = np.minimum(index + pace * opts.stall_days, grid[-1])
    gain = np.interp(ahead, grid, table.visible) - np.interp(index, grid, table.visible)
    k = int(np.argmin(gain))
    pos = PlanPosition(float(index[k]), int(np.floor(index.min())), int(np.ceil(index.max())), float(pace[k]))
    return level0, pos


def site_reading_noise(
    table: PlanCurves, observations: Sequence[SceneProgress], until: date, opts: CurveOptions
) -> tuple[float, float, float, float, float, float]:
    """How a site's readings scatter: (sigma, misread chance, phantom chance), clear then partial.

    Returned in the order sigma clear, sigma partial, misread clear, misread partial, phantom
    clear, phantom partial.

    Measured on the residuals of its estimates up to ``until`` from its best-fitting schedule
    (:func:`plan_warps`), by EM on the good-reading/phantom-slab/misread mixture
    (:func:`_mixture_fit`), separately for clear and partial scenes. The option values
    (``stall_noise_pp``, ``stall_outlier_clear``, ``stall_phantom_floor`` and their partial twins)
    are floors, and the misread and phantom chances together are capped at ``stall_outlier_max``; a class
    with fewer than ``noise_min_scenes`` readings keeps the floors.
    """
    floors = (
        opts.stall_noise_pp,
        opts.stall_noise_partial_pp,
        opts.stall_outlier_clear,
        opts.stall_outlier_partial,
        opts.stall_phantom_floor,
        opts.stall_phantom_floor,
    )
    known = [o for o in observations if o.percent is not None and o.acquired_at_utc.date() <= until]
    warps = plan_warps(table, known, until, opts)
    if warps is None:
        return floors
    best = int(np.argmax(warps[2]))
    pace, delay = float(warps[0][best]), float(warps[1][best])
    t = np.array([(o.acquired_at_utc.date() - table.origin).days for o in known], dtype=np.float64)
    mean = table.visible_on_schedule(pace, delay, t)
    resid = np.array([float(o.percent or 0.0) for o in known], dtype=np.float64) - mean
    is_clear = np.array([o.observed_fraction >= opts.stall_clear_seen for o in known], dtype=bool)
    out = list(floors)
    step = table.phantom_pp
    for k, members in enumerate((is_clear, ~is_clear)):
        r = resid[members]
        if len(r) < opts.noise_min_scenes:
            continue
        sigma, p = floors[k], floors[k + 2]
        q = max(floors[k + 4], 0.05) if step > 0.0 else 0.0
        for _ in range(20):
            norm = sigma * math.sqrt(2.0 * math.pi)
            inlier = (1.0 - p - q) * np.exp(-0.5 * (r / sigma) ** 2) / norm
            ghost = q * np.exp(-0.5 * ((r - step) / sigma) ** 2) / norm
            total = inlier + ghost + p / _OUTLIER_SPAN_PP
            good = inlier / total
            p = float(np.clip(1.0 - good.mean() - (ghost / total).mean(), floors[k + 2], opts.stall_outlier_max))
            if step > 0.0:
                # Misreads and phantoms together stay under the cap: the rest are good readings.
                q = float(np.clip((ghost / total).mean(), floors[k + 4], max(opts.stall_outlier_max - p, 0.0)))
            sigma = max(float(np.sqrt(np.sum(good * r**2) / max(good.sum(), 1e-9))), floors[k])
        out[k], out[k + 2], out[k + 4] = sigma, p, q
    return out[0], out[1], out[2], out[3], out[4], out[5]


def _reading_noise(observations: Sequence[SceneProgress], opts: CurveOptions) -> tuple[FloatArray, FloatArray]:
    """(scatter in pp, chance of a misread) of each estimate, by how much of the footprints it saw."""
    is_clear = np.array([o.observed_fraction >= opts.stall_clear_seen for o in observations], dtype=bool)
    noise = np.where(is_clear, opts.stall_noise_pp, opts.stall_noise_partial_pp).astype(np.float64)
    p_out = np.where(is_clear, opts.stall_outlier_clear, opts.stall_outlier_partial).astype(np.float64)
    return noise, p_out


def plan_warps(
    table: PlanCurves,
    observations: Sequence[SceneProgress],
    until: date,
    opts: CurveOptions,
    *,
    flat_since: date | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """The site's own schedules that fit its raw estimates up to ``until``: (pace, delay, log-likelihood).

    A schedule is the visible plan started ``delay`` days late and run at ``pace`` plan days per
    day (``min_pace`` to ``max_pace``), so plan index = pace * (days since the plan's origin -
    delay). Each is scored by the log-likelihood of the estimates under the good-reading/misread
    mixture (:func:`_mixture_fit`'s model, with the schedule as the mean), on a grid
    (``warp_pace_step``, ``warp_delay_step_days``, delays from ``-warp_max_early_days`` to
    ``warp_max_delay_days``). Returned are the schedules within ``warp_region_nats`` of the best:
    the likelihood region, which is wide where the readings sit on a plateau of the visible plan
    and narrow where they climb.

    With ``flat_since`` (a day from which the site is known to have done no work: its sensors
    went idle), the readings after it are readings of the level it stood at on that day, and
    ages count from that day: what the site did before it stopped fixes its schedule, and an idle
    stretch neither fades that evidence nor drags the schedule along a plateau.

    Returns:
        Three arrays of the same length, or None without estimates.
    """
    known = [o for o in observations if o.percent is not None and o.acquired_at_utc.date() <= until]
    if not known:
        return None
    t = np.array([(o.acquired_at_utc.date() - table.origin).days for o in known], dtype=np.float64)
    now = (until - table.origin).days
    if flat_since is not None and flat_since < until:
        now = (flat_since - table.origin).days
        t = np.minimum(t, now)
    y = np.array([float(o.percent or 0.0) for o in known], dtype=np.float64)
    noise, p_out = _reading_noise(known, opts)
    paces = np.arange(opts.min_pace, opts.max_pace + 1e-9, opts.warp_pace_step)
    delays = np.arange(-opts.warp_max_early_days, opts.warp_max_delay_days + 1e-9, opts.warp_delay_step_days)
    pace_g, delay_g = (a.ravel() for a in np.meshgrid(paces, delays, indexing="ij"))
    mean = table.visible_on_schedule(pace_g[:, None], delay_g[:, None], t[None, :])
    z = (y[None, :] - mean) / noise[None, :]
    q = opts.warp_phantom_prior if table.phantom_pp > 0.0 else 0.0
    good = (1.0 - p_out - q) * np.exp(-0.5 * z**2) / (noise * math.sqrt(2.0 * math.pi))
    # A phantom slab (one slab step high) is read as one, not as the schedule being a step ahead.
    good += q * np.exp(-0.5 * (z - table.phantom_pp / noise) ** 2) / (noise * math.sqrt(2.0 * math.pi))
    # Older readings count less (half-life ``warp_memory_days``): the schedule is the site's
    # current one, and a site that read ahead during its earthworks is not fast for ever.
    age = now - t
    memory = 0.5 ** (np.maximum(age, 0.0) / opts.warp_memory_days)
    loglik = (memory[None, :] * np.log(good + p_out / _OUTLIER_SPAN_PP)).sum(axis=1)
    keep = loglik >= loglik.max() - opts.warp_region_nats
    return pace_g[keep], delay_g[keep], loglik[keep]


def _expected_visible(table: PlanCurves, pos: PlanPosition, days: FloatArray, pace_factor: float = 1.0) -> FloatArray:
    """Visible progress (pp) the plan expects ``days`` after ``pos``, at ``pace_factor`` times the site's pace."""
    grid = np.arange(len(table.visible), dtype=np.float64)
    here = float(np.interp(pos.index, grid, table.visible))
    ahead = np.minimum(pos.index + pace_factor * pos.pace * np.maximum(days, 0.0), grid[-1])
    return np.asarray(np.interp(ahead, grid, table.visible) - here, dtype=np.float64)


def anchored_stall(
    table: PlanCurves,
    curve: FittedCurve,
    as_of: date,
    opts: CurveOptions,
    observations: Sequence[SceneProgress] | None = None,
) -> bool:
    """The anchored-slope test: no progress seen over the last ``stall_days`` while the plan expects visible progress.

    Observed progress: the level at the window's start is anchored on the history before it (a
    weighted linear fit over the preceding ``2 * stall_days``); the slope inside the window is then
    fitted through that anchor. Anchoring uses all earlier scenes, so a stall is told from slow
    progress sooner than by comparing two noisy levels.

    Expected progress: the visible plan followed from where the site stood at the window's start
    (:func:`plan_position`) at the pace it kept until then. A late site going through a pause of
    its plan, or through work imagery cannot see yet, is slow, not stalled; a site that stopped
    where the plan expects slabs or roofs to appear is stalled.
    """
    start = as_of - timedelta(days=opts.stall_days)
    if not curve.days or curve.days[0] > start - timedelta(days=opts.stall_days // 2):
        return False  # not watched long enough to say
    x = np.array([(d - start).days for d in curve.days], dtype=np.float64)
    y, w = np.asarray(curve.obs), 1.0 / np.asarray(curve.sigma) ** 2
    hist = (x <= 0) & (x > -2 * opts.stall_days)
    win = (x > 0) & (x <= opts.stall_days)
    if hist.sum() < 2 or win.sum() < 2:
        return False
    level0 = _weighted_line(x[hist], y[hist], w[hist])(0.0)
    if level0 >= opts.complete_pct:
        return False
    xs, ys, ws = x[win], y[win] - level0, w[win]
    slope = float(np.sum(ws * xs * ys) / np.sum(ws * xs * xs))
    # Progress and expectation both up to the newest scene in the window: the plan's steps after
    # the last look cannot be missing from the readings yet.
    last = float(xs.max())
    progressed = slope * last
    history = curve.until(start)
    if observations is None:
        pos = plan_position(table, history, start, opts)
    else:
        placed = window_start_position(table, history, observations, start, opts)
        pos = None if placed is None else placed[1]
    if pos is None:
        return False
    expected = float(_expected_visible(table, pos, np.array([last]))[0])
    if start > table.day(len(table.visible) - 1):
        # The plan has ended with the site unfinished: it expects the rest.
        expected = max(expected, 100.0 - level0)
    return expected >= opts.stall_planned_pp and progressed < opts.stall_min_pp


def stall_check_of(stalled: bool, evidence: StallEvidence, *, disputed: bool = False) -> str:
    """What an officer is told about stalls: the flag, or why it is down (no verdict is not "fine").

    ``"disputed"`` when imagery saw a stop and the sensors saw the site at work. Sensors that read
    "working" do not clear a site imagery could not: their reference (the site's usual day) is
    only as good as the history behind it.
    """
    if stalled:
        return "stalled"
    if disputed:
        return "disputed"
    if evidence.verdict in ("insufficient", "not_expected"):
        return evidence.verdict
    return "not_stalled"


@dataclass(frozen=True, slots=True)
class IdleEvidence:
    """What a site's sensors say about a stop over the last ``idle_days``.

    Attributes:
        verdict: ``"idle"`` (the plan expects progress and the site's machines and crews stood
            still); ``"working"``; ``"not_expected"`` (the plan, on some schedule the imagery
            allows, expects less than ``idle_planned_pp`` in the window, or the site reads
            finished); ``"insufficient"`` (too few days with reports, or no imagery to place the
            site on its plan).
        days_reported: Days of the window with a work level.
        days_idle: Of those, days at or below ``idle_level``.
        expected_pp: Planned progress over the window (nominal plan, not the visible one) on the
            schedule, of those the imagery allows, that expects the least; 0 when not computed.
        median_level: Median work level of the reported days (None without any).
    """

    verdict: Literal["idle", "working", "not_expected", "insufficient"]
    days_reported: int
    days_idle: int
    expected_pp: float = 0.0
    median_level: float | None = None


def idle_evidence(
    table: PlanCurves,
    curve: FittedCurve,
    observations: Sequence[SceneProgress],
    activity: Sequence[SiteWork],
    as_of: date,
    options: CurveOptions | None = None,
) -> IdleEvidence:
    """The sensor witness: the site stood idle for ``idle_days`` while its plan expected progress.

    Imagery sees slabs and roofs, not the months of excavation and formwork before them: a site
    stopped there looks like one on plan until the plan expects something visible. Its machines,
    crews, deliveries and pours (:class:`SiteWork`) stop at once. The plan's expectation is the
    *nominal* one (all work, visible or not) over the window, on the site's own schedule fitted
    to the imagery (:func:`plan_warps`; where the sensors say when work stopped, as the readings
    stood then), taking of the schedules the readings allow the one that expects the least; a
    site in a planned pause, or one that reads finished, is not expected to work. Only days with
    reports count; silence is a gap (a removed or broken feed), not a stop.
    """
    opts = options or CurveOptions()
    start = as_of - timedelta(days=opts.idle_days)
    levels = [w.level for w in activity if start < w.day <= as_of and w.level is not None]
    reported = len(levels)
    idle = sum(level <= opts.idle_level for level in levels)
    median = round(float(np.median(levels)), 4) if levels else None
    if reported < opts.idle_min_reported * opts.idle_days:
        return IdleEvidence("insufficient", reported, idle, median_level=median)
    if idle < opts.idle_share * reported:
        return IdleEvidence("working", reported, idle, median_level=median)
    known = [o for o in observations if o.acquired_at_utc.date() <= start]
    if finish_day(known, start, opts) is not None:
        return IdleEvidence("not_expected", reported, idle, median_level=median)
    level0 = curve.until(start).value(start)
    if level0 is None:
        return IdleEvidence("insufficient", reported, idle, median_level=median)
    # Finished at the window's start, or by now (the readings since say so: the work was done).
    if max(level0, curve.value(as_of) or 0.0) >= opts.complete_pct:
        return IdleEvidence("not_expected", reported, idle, median_level=median)
    # The expectation runs from the day work stopped when the stretch is longer than the window:
    # on a schedule where the site merely entered a planned pause, the plan expects nothing since
    # then; on one where it stopped mid-phase, it expects the rest of that phase.
    stopped = idle_since(activity, as_of, opts) if opts.idle_whole_stretch else None
    # Not for a site within a reading's noise of complete: one that finished while its readings
    # trail would owe the plan's whole tail since its crews left.
    if level0 >= opts.complete_pct - opts.noise_pp:
        stopped = None
    # The schedule is the one the site kept until it stopped, the readings since then being of
    # the level it stopped at; without a stop on record, the one it kept until the window.
    sched = replace(opts, warp_memory_days=opts.idle_memory_days)
    if stopped is not None:
        warps = plan_warps(table, observations, as_of, sched, flat_since=stopped)
    else:
        warps = plan_warps(table, observations, start, sched)
    if warps is None:
        return IdleEvidence("insufficient", reported, idle, median_level=median)
    pace, delay, _ = warps
    grid = np.arange(len(table.planned), dtype=np.float64)
    since = min(start, stopped) if stopped is not None else start
    # Both ends on the schedule first, then clipped: a window that starts before the schedule
    # does expects only the work after its start.
    begin = pace * ((since - table.origin).days - delay)
    index = np.clip(begin, 0.0, grid[-1])
    ahead = np.clip(pace * ((as_of - table.origin).days - delay), 0.0, grid[-1])
    gain = np.interp(ahead, grid, table.planned) - np.interp(index, grid, table.planned)
    expected = float(gain.min())
    verdict: Literal["idle", "not_expected"] = "idle" if expected >= opts.idle_planned_pp else "not_expected"
    return IdleEvidence(verdict, reported, idle, round(expected, 2), median)


def stall_witnesses(
    imagery_stalled: bool, seen: StallEvidence, idle: IdleEvidence, opts: CurveOptions
) -> tuple[str, ...]:
    """Who saw the stop: ``("imagery",)``, ``("sensors",)``, both, or nobody (no flag).

    Idle sensors do not outvote imagery that shows progress with substantial evidence (the
    likelihood ratio as far for "moving" as the flag needs it for "stopped") on a full window:
    the work is happening, and a feed that reads idle is broken or misattributed. A window
    widened for want of clear scenes does not veto: it reaches back past the idle weeks, to
    progress made before the stop.

    Nor does imagery outvote sensors that saw the site at work (:func:`site_at_work`): readings
    that scatter by a point or two and misread now and then can look flat for a month, machines
    and crews at half their usual day or more are not a stopped site (:func:`stall_check_of` says
    ``"disputed"``).
    """
    imagery_moving = not seen.widened and seen.log_ratio is not None and seen.log_ratio < -opts.stall_log_ratio
    sensors = idle.verdict == "idle" and not imagery_moving
    imagery = imagery_stalled and not site_at_work(idle, opts)
    return tuple(name for name, saw in (("imagery", imagery), ("sensors", sensors)) if saw)


def site_at_work(idle: IdleEvidence, opts: CurveOptions) -> bool:
    """The sensors saw the site at work: enough days reported, at a median of ``busy_level`` of a usual day or more."""
    return (
        idle.days_reported >= opts.idle_min_reported * opts.idle_days
        and idle.median_level is not None
        and idle.median_level >= opts.busy_level
    )


def is_stalled(
    table: PlanCurves, curve: FittedCurve, observations: Sequence[SceneProgress], as_of: date, opts: CurveOptions
) -> bool:
    """The stall flag: the likelihood ratio says stopped, and on a widened window the anchored-slope test agrees.

    :func:`stall_evidence` needs more than ``stall_log_ratio`` for "stopped" over "moving" (with
    enough scenes in the window to compute it). It models misreads and phantom slabs, which fool
    :func:`anchored_stall` (a phantom in its window reads as progress and hides a stop); so on a
    full window it decides alone. Where the window had to be widened to twice ``stall_days`` for
    want of scenes, its free run-up can fit a site that kept moving as "ran fast, then stopped",
    and the anchored test must agree as well (``stall_anchor_every_window`` asks for both on
    every window). When ``stall_confirm_days`` is set, the same
    must have held that many days earlier, on what was known then.
    """
    if not _stall_test(table, curve, observations, as_of, opts):
        return False
    if opts.stall_confirm_days <= 0:
        return True
    earlier = as_of - timedelta(days=opts.stall_confirm_days)
    known = [o for o in observations if o.acquired_at_utc.date() <= earlier]
    return _stall_test(table, fit_curve(known, opts), known, earlier, opts)


def _stall_test(
    table: PlanCurves, curve: FittedCurve, observations: Sequence[SceneProgress], as_of: date, opts: CurveOptions
) -> bool:
    evidence = stall_evidence(table, curve, observations, as_of, opts)
    # The anchored test looks at the window the evidence came from: the widened one after a
    # cloudy month (on the plain window it would find the same too few scenes and veto the flag).
    window = replace(opts, stall_days=2 * opts.stall_days) if evidence.widened else opts
    if (opts.stall_anchor_every_window or evidence.widened) and not anchored_stall(
        table, curve, as_of, window, observations
    ):
        return False
    return evidence.log_ratio is not None and evidence.log_ratio > opts.stall_log_ratio


def _entered(
    observations: Sequence[SceneProgress], level: float | None, until: date, opts: CurveOptions
) -> date | None:
    """First day on which most clear estimates of the following ``smooth_days`` were at ``level`` or above.

    A majority vote, so upward misreads (common while a building flickers into view) do not
    date the arrival early, as they do on the fitted curve. None when no day qualifies.
    """
    if level is None:
        return None
    clear = sorted(
        (o.acquired_at_utc.date(), float(o.percent))
        for o in observations
        if o.percent is not None and o.observed_fraction >= opts.stall_clear_seen and o.acquired_at_utc.date() <= until
    )
    for k, (day, _) in enumerate(clear):
        near = [v for d, v in clear[k:] if (d - day).days <= opts.smooth_days]
        if float(np.median(near)) >= level - opts.level_tol_pp:
            return day
    return None


#: Spread (pp) of a misread estimate: uniform over this range.
_OUTLIER_SPAN_PP = 60.0


def _mixture_fit(
    y: FloatArray,
    design: FloatArray,
    offset: FloatArray,
    noise: FloatArray,
    p_out: FloatArray,
    *,
    iterations: int = 25,
    phantom_pp: float = 0.0,
    p_phantom: FloatArray | float = 0.0,
) -> tuple[float, FloatArray]:
    """Maximised log-likelihood, and ``beta``, of ``y = design @ beta + offset`` under a good-reading/misread mixture.

    Each estimate is a good reading (Gaussian, sigma ``noise``) with chance ``1 - p_out -
    p_phantom``, a phantom slab (the same Gaussian, ``phantom_pp`` higher) with chance
    ``p_phantom``, else misread (uniform over ``_OUTLIER_SPAN_PP``). EM: weighted least squares on
    the chance that each estimate is a good reading (or a phantom, shifted back by its step), from
    the prior chances.
    """
    p_ph = np.broadcast_to(np.asarray(p_phantom, dtype=np.float64), y.shape)
    if phantom_pp <= 0.0:
        p_ph = np.zeros_like(y)
    p_good = np.maximum(1.0 - p_out - p_ph, 1e-6)
    good = p_good.copy()
    ghost = p_ph.copy()
    resid = y - offset
    loglik = -math.inf
    beta: FloatArray = np.zeros(design.shape[1])
    norm = noise * math.sqrt(2.0 * math.pi)
    for _ in range(iterations):
        sw = np.sqrt(np.concatenate([good, ghost])) / np.concatenate([noise, noise])
        a = np.vstack([design, design])
        b = np.concatenate([resid, resid - phantom_pp])
        solution, *_ = np.linalg.lstsq(a * sw[:, None], b * sw, rcond=None)
        beta = np.asarray(solution, dtype=np.float64)
        z = (resid - design @ beta) / noise
        inlier = p_good * np.exp(-0.5 * z**2) / norm
        phantom = p_ph * np.exp(-0.5 * (z - phantom_pp / noise) ** 2) / norm
        total = inlier + phantom + p_out / _OUTLIER_SPAN_PP
        new = float(np.log(total).sum())
        good = np.maximum(inlier / total, 1e-6)
        ghost = phantom / total
        if new - loglik < 1e-6:
            loglik = max(loglik, new)
            break
        loglik = new
    return loglik, beta


def visible_planned_percent(plan: Plan, on: date) -> float:
    """The plan's percent complete as imagery can see it (see :class:`PlanCurves`)."""
    table = PlanCurves.of(plan)
    if on <= table.origin:
        return 0.0
    return float(table.visible[table.index(on)])


def _weighted_line(x: FloatArray, y: FloatArray, w: FloatArray) -> Callable[[float], float]:
    sw = w.sum()
    mx, my = (w * x).sum() / sw, (w * y).sum() / sw
    sxx = (w * (x - mx) ** 2).sum()
    b = (w * (x - mx) * (y - my)).sum() / sxx if sxx > 1e-9 else 0.0
    return lambda t: float(my + b * (t - mx))
