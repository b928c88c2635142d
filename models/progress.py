"""Progress against plan: a monotone curve through per-scene estimates, slip, forecast and flags.

Pure functions over domain records; no file, database or network access.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from aoi.model import Plan, builds_on_pad
from aoi.records import ProgressEvent, ProgressPoint, ProgressSummary, SceneProgress

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
        rate_window_days: Window of the recent progress rate.
        stall_days: No progress for this long, while the plan expects some, is a stall.
        stall_min_pp: Less observed progress than this over the stall window counts as none.
        stall_planned_pp: The plan must expect at least this much over the stall window.
    """

    noise_pp: float = 4.0
    band_z: float = 1.64
    density_days: float = 20.0
    smooth_days: float = 20.0
    complete_pct: float = 97.5
    reversal_pp: float = 10.0
    reversal_min_scenes: int = 3
    rate_window_days: int = 56
    stall_days: int = 28
    stall_min_pp: float = 1.5
    stall_planned_pp: float = 3.0


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


def fit_curve(observations: Sequence[SceneProgress], options: CurveOptions | None = None) -> FittedCurve:
    """Fit a non-decreasing curve through per-scene estimates, keeping a sustained drop as an event.

    Scenes without an estimate are ignored. Estimates are smoothed (local-linear, weighted by how
    much each scene saw and how decisive the model was), then made non-decreasing. When a split
    into "rising, then falling" explains the estimates much better than one rising curve, with the
    fall sustained over ``reversal_min_scenes`` scenes, the curve falls after the split and a
    ``reversal`` event is recorded.
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
    sigma = opts.noise_pp / np.sqrt(w)
    split = _reversal_split(y, w, opts)
    events: tuple[ProgressEvent, ...] = ()
    if split is None:
        fitted = np.clip(isotonic_fit(local_linear(x, y, w, opts.smooth_days), w), 0.0, 100.0)
    else:
        before = isotonic_fit(local_linear(x[:split], y[:split], w[:split], opts.smooth_days), w[:split])
        after = isotonic_fit(
            local_linear(x[split:], y[split:], w[split:], opts.smooth_days), w[split:], increasing=False
        )
        after = np.minimum(after, before[-1])
        fitted = np.clip(np.concatenate([before, after]), 0.0, 100.0)
        # Date the event where the fall is under way, not where the flat top that precedes it begins.
        falling = np.nonzero(after < before[-1] - opts.reversal_pp / 2)[0]
        fell_on = days[split + int(falling[0])] if falling.size else days[split]
        events = (
            ProgressEvent(
                "reversal",
                fell_on,
                f"observed progress fell from {before[-1]:.0f} % to {after[-1]:.0f} % "
                "(demolition, or cleared ground returning to vegetation)",
                round(float(before[-1] - after[-1]), 1),
            ),
        )
    return FittedCurve(
        days, tuple(float(v) for v in fitted), tuple(float(s) for s in sigma), events, tuple(float(v) for v in y)
    )


def _reversal_split(y: FloatArray, w: FloatArray, opts: CurveOptions) -> int | None:
    """Index where a sustained fall starts, or None (penalised comparison of the two models)."""
    n = len(y)
    k = opts.reversal_min_scenes
    if n < k + 2:
        return None
    sse_up = float(np.sum(w * (y - isotonic_fit(y, w)) ** 2))
    best, best_sse = None, math.inf
    for s in range(2, n - k + 1):
        a = isotonic_fit(y[:s], w[:s])
        b = isotonic_fit(y[s:], w[s:], increasing=False)
        if int(np.sum(y[s:] < a[-1] - opts.reversal_pp)) < k:
            continue
        sse = float(np.sum(w[:s] * (y[:s] - a) ** 2) + np.sum(w[s:] * (y[s:] - b) ** 2))
        if sse < best_sse:
            best, best_sse = s, sse
    # BIC-like penalty in units of the per-scene noise: a split must pay for its extra freedom.
    penalty = 2.0 * math.log(n) * opts.noise_pp**2 * k
    if best is None or sse_up - best_sse < penalty:
        return None
    return best


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
) -> tuple[ProgressSummary, list[ProgressPoint]]:
    """Progress against plan on ``as_of`` and the curve at every observation day.

    Args:
        site_id: The site.
        plan: Its plan.
        observations: Per-scene estimates (with or without a value).
        as_of: The day of the figures.
        method: Which estimator produced the observations (recorded with the figures).
        options: Curve tuning.

    Returns:
        The summary and the series (one point per scene day up to ``as_of``, then ``as_of``).
    """
    opts = options or CurveOptions()
    usable = [o for o in observations if o.acquired_at_utc.date() <= as_of]
    curve = fit_curve(usable, opts)
    planned_now = plan.planned_percent(as_of)
    used = sum(o.percent is not None for o in usable)
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
    stalled = _stalled(plan, curve, as_of, opts)
    early, mid, late = (None, None, None) if stalled else _forecast(curve, as_of, observed, opts)
    summary = ProgressSummary(
        site_id=site_id,
        as_of=as_of,
        planned_pct=round(planned_now, 2),
        observed_pct=round(observed, 2),
        lower_pct=round(max(0.0, observed - half), 2),
        upper_pct=round(min(100.0, observed + half), 2),
        deviation_pp=round(observed - planned_now, 2),
        slip_days=slip_days(plan, observed, as_of, _finished_on(curve, opts.complete_pct)),
        rate_pp_per_week=None if rate is None else round(rate, 3),
        forecast_completion=mid,
        forecast_early=early,
        forecast_late=late,
        stalled=stalled,
        outside_activity_pct=round(100.0 * float(np.median(outside[-3:])), 2) if outside else None,
        events=curve.events,
        scenes_used=used,
        scenes_skipped=len(usable) - used,
        last_observation=last,
        method=method,
    )
    return summary, points


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


def _finished_on(curve: FittedCurve, complete_pct: float) -> date | None:
    return next((d for d, v in zip(curve.days, curve.fitted, strict=True) if v >= complete_pct), None)


def slip_days(plan: Plan, observed: float, as_of: date, finished_on: date | None = None) -> int:
    """Earned schedule: days between today and the day the plan expected today's progress.

    Once a site is complete, "today" becomes the day it was first seen complete, so a finished
    site keeps the slip it finished with instead of growing a day every day.
    """
    if finished_on is not None:
        planned_end = plan.date_for_percent(100.0) or plan.end
        return (finished_on - planned_end).days
    if observed <= 0.0:
        return max(0, (as_of - plan.start).days)
    expected_on = plan.date_for_percent(min(observed, 100.0))
    if expected_on is None:
        return 0
    return (as_of - expected_on).days


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


def _stalled(plan: Plan, curve: FittedCurve, as_of: date, opts: CurveOptions) -> bool:
    """No observed progress over the last ``stall_days`` while the plan expects some.

    The level at the window's start is anchored on the history before it (a weighted linear fit
    over the preceding ``2 * stall_days``); the slope inside the window is then fitted through that
    anchor. Anchoring uses all earlier scenes, so a stall is told from slow progress sooner than
    by comparing two noisy levels.
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
    progressed = slope * opts.stall_days
    # The plan expects progress when its own curve rises over the window, or when it has ended
    # with the site unfinished. Being behind during a pause of the plan (between earthworks and
    # the buildings, say) is slip, not a stall.
    planned_rise = visible_planned_percent(plan, as_of) - visible_planned_percent(plan, start)
    expected = planned_rise if as_of <= plan.end else max(planned_rise, 100.0 - level0)
    return expected >= opts.stall_planned_pp and progressed < opts.stall_min_pp


#: Share of a building's schedule on a cleared pad that shows nothing from space (set-up,
#: excavation, formwork) before slabs appear.
INVISIBLE_START = 0.15


def visible_planned_percent(plan: Plan, on: date) -> float:
    """The plan's percent complete as imagery can see it.

    The same as :meth:`Plan.planned_percent` except that a building on a cleared pad shows no
    change during the first ``INVISIBLE_START`` of its schedule. Used to decide whether the plan
    expects *visible* progress, so that stretch is not mistaken for a stall.
    """
    if plan.milestones:
        return plan.planned_percent(on)
    total = sum(p.weight for p in plan.phases) or 1.0
    acc = 0.0
    for k, phase in enumerate(plan.phases):
        f = phase.planned_fraction(on)
        if builds_on_pad(plan, k):
            f = max(0.0, (f - INVISIBLE_START) / (1.0 - INVISIBLE_START))
        acc += phase.weight * f
    return 100.0 * acc / total


def _weighted_line(x: FloatArray, y: FloatArray, w: FloatArray) -> Callable[[float], float]:
    sw = w.sum()
    mx, my = (w * x).sum() / sw, (w * y).sum() / sw
    sxx = (w * (x - mx) ** 2).sum()
    b = (w * (x - mx) * (y - my)).sum() / sxx if sxx > 1e-9 else 0.0
    return lambda t: float(my + b * (t - mx))
