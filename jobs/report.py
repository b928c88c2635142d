"""The site report for the credit file: one PDF with the map, the charts and every figure behind them.

Two halves, as in :mod:`jobs.evidence`:

- :func:`gather_site_report` reads what the officer's site view shows (progress, scenes,
  daily sensor activity, score history, alerts, the watch-list case and its notes) from the
  store, and draws the map snapshot from the newest clear scene with
  :func:`imagery.render.truecolor` and the change overlay of :func:`jobs.overlay.scene_change_probability`
  rendered by :func:`imagery.render.change_overlay`.
- :func:`report_pdf` turns that :class:`SiteReport` into PDF bytes with matplotlib's PDF
  backend. It touches nothing outside its argument, and the PDF carries no creation date, so the
  same report gives the same bytes.

Text is embedded as TrueType (``pdf.fonttype`` 42), so the figures can be searched and copied
out of the PDF.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from rasterio.errors import RasterioError
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Engine

from aoi.model import Site
from aoi.records import ProgressPoint, ProgressSummary, SceneRecord
from geo import WGS84, Grid, reproject_geometry
from imagery.cache import SceneCache
from imagery.errors import ImageryError
from imagery.providers.base import SceneRef
from imagery.render import change_overlay, truecolor
from iot.features import SiteDayFeatures
from jobs.context import open_provider
from jobs.iot import site_daily_features
from jobs.overlay import scene_change_probability
from jobs.pipeline import estimator_for
from jobs.progress import CLEAR_FOR_EVIDENCE, site_grid
from jobs.settings import Settings
from store import progress_repo, repo, risk_repo
from store.risk_repo import AlertRecord, CaseRecord, StoredScore

logger = logging.getLogger(__name__)

#: Days of sensor activity charted, ending on the report's as-of day.
ACTIVITY_DAYS = 90
#: True colour bands, red, green, blue (Sentinel-2 names).
TRUE_COLOUR_BANDS = ("B04", "B03", "B02")
#: Okabe-Ito hues not used for risk bands, and a dash per phase: the web map's phase styles.
PHASE_STYLES: tuple[tuple[str, tuple[float, ...] | None], ...] = (
    ("#009e73", None),
    ("#cc79a7", (8, 4)),
    ("#000000", (2, 4)),
    ("#0072b2", (12, 4, 2, 4)),
    ("#e69f00", (4, 4)),
)
#: Colour-blind-safe band colours, the web map's.
BAND_COLOURS = {"A": "#0072b2", "B": "#56b4e9", "C": "#f0e442", "D": "#e69f00", "E": "#d55e00"}
_A4_IN = (8.27, 11.69)
#: rc_context changes matplotlib's global settings: one render at a time (the API renders in threads).
_render_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class MapSnapshot:
    """The picture of the site: newest clear scene, change overlay, planned footprints per phase.

    Attributes:
        scene: The scene drawn (None when no scene could be drawn).
        rgb: (y, x, 3) uint8 true colour on the site grid (UTM), or None.
        overlay: (y, x, 4) uint8 RGBA change overlay on the same grid, or None.
        footprints_px: Per phase, (name, exterior rings as (n, 2) arrays of (col, row) pixel coordinates).
        boundary_px: Exterior rings of the site boundary in the same pixel coordinates.
        notes: Why a part is missing (no clear scene, no baseline for the overlay, ...).
    """

    scene: SceneRecord | None
    rgb: npt.NDArray[np.uint8] | None
    overlay: npt.NDArray[np.uint8] | None
    footprints_px: tuple[tuple[str, tuple[npt.NDArray[np.float64], ...]], ...]
    boundary_px: tuple[npt.NDArray[np.float64], ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SiteReport:
    """Everything the site report shows, gathered once (see :func:`gather_site_report`)."""

    site: Site
    borrower: str | None
    band: str | None
    summary: ProgressSummary | None
    points: tuple[ProgressPoint, ...]
    #: The progress run's inputs as stored (method, provenance, inputs_sha256, ...).
    inputs: dict[str, Any]
    scenes: tuple[SceneRecord, ...]
    activity: tuple[SiteDayFeatures, ...]
    #: Score history of the site's loan, oldest first; the last is the current score.
    scores: tuple[StoredScore, ...]
    #: Alerts of the loan that are not resolved (open or acknowledged), newest first.
    alerts: tuple[AlertRecord, ...]
    case: CaseRecord | None
    case_notes: tuple[risk_repo.CaseNoteRecord, ...]
    snapshot: MapSnapshot
    generated_at_utc: datetime
    #: Change-detection checkpoint configured for the overlay ("" or None: spectral-index estimator).
    checkpoint: str | None = None

    @property
    def as_of(self) -> date:
        """The day the report's figures are for: the progress as-of, else the score's, else generation day."""
        if self.summary is not None:
            return self.summary.as_of
        if self.scores:
            return self.scores[-1].data.as_of
        return self.generated_at_utc.date()


# ---------------------------------------------------------------- gather (I/O)


def newest_clear_scene(records: Sequence[SceneRecord]) -> SceneRecord | None:
    """The newest used scene that shows at least CLEAR_FOR_EVIDENCE of the site, else the newest used one."""
    used = sorted((r for r in records if r.used), key=lambda r: r.acquired_at_utc)
    clear = [r for r in used if r.valid_fraction >= CLEAR_FOR_EVIDENCE]
    if clear:
        return clear[-1]
    return used[-1] if used else None


def _rings_px(geometry_wgs84: BaseGeometry, grid: Grid) -> tuple[npt.NDArray[np.float64], ...]:
    """Exterior rings of a WGS84 (multi)polygon as (n, 2) (col, row) pixel coordinates on ``grid``."""
    projected = reproject_geometry(geometry_wgs84, WGS84, grid.crs)
    polygons = getattr(projected, "geoms", [projected])
    inverse = ~grid.transform
    rings = []
    for poly in polygons:
        xy = np.asarray(poly.exterior.coords, dtype=np.float64)[:, :2]
        cols = inverse.a * xy[:, 0] + inverse.b * xy[:, 1] + inverse.c
        rows = inverse.d * xy[:, 0] + inverse.e * xy[:, 1] + inverse.f
        rings.append(np.column_stack([cols, rows]))
    return tuple(rings)


def _true_colour(settings: Settings, site: Site, rec: SceneRecord, grid: Grid) -> npt.NDArray[np.float32]:
    """(3, y, x) reflectance of a scene in red, green, blue: the scene cache first, else the provider.

    Raises:
        ImageryError: the provider cannot find or read the scene.
    """
    cache = SceneCache(settings.cache_dir)
    w, s, e, n = site.boundary_wgs84.bounds
    ref = SceneRef(rec.provider, rec.scene_id, rec.acquired_at_utc, (w, s, e, n), rec.cloud_pct, None, {})
    cached = cache.get(ref, grid, TRUE_COLOUR_BANDS)
    if cached is not None:
        return np.asarray(cached.values, dtype=np.float32)
    provider = open_provider(settings)
    found = provider.search(
        (w, s, e, n), rec.acquired_at_utc - timedelta(minutes=1), rec.acquired_at_utc + timedelta(minutes=1)
    )
    match = next((r for r in found if r.scene_id == rec.scene_id), None)
    if match is None:
        raise ImageryError(f"scene {rec.scene_id!r} is in neither the scene cache nor the {provider.name} provider")
    data = provider.read(match, grid, TRUE_COLOUR_BANDS)
    cache.put(match, grid, data)
    return np.asarray(data.values, dtype=np.float32)


#: What reading or comparing a scene may raise; the report names it instead of failing.
_IMAGERY_PROBLEMS = (ImageryError, RasterioError, OSError, ValueError)


def map_snapshot(settings: Settings, site: Site, records: Sequence[SceneRecord]) -> MapSnapshot:
    """Draw the newest clear scene in true colour with its change overlay and the planned footprints.

    Each missing part is named in ``notes``; this never raises for missing imagery.
    """
    grid = site_grid(site)
    footprints = tuple((p.name, _rings_px(p.footprint_wgs84, grid)) for p in site.plan.phases)
    boundary = _rings_px(site.boundary_wgs84, grid)
    notes: list[str] = []
    rec = newest_clear_scene(records)
    if rec is None:
        notes.append("no usable scene recorded yet")
        return MapSnapshot(None, None, None, footprints, boundary, tuple(notes))
    rgb: npt.NDArray[np.uint8] | None = None
    try:
        red, green, blue = _true_colour(settings, site, rec, grid)
        rgb = truecolor(red, green, blue)
    except _IMAGERY_PROBLEMS as exc:
        notes.append(f"true colour unavailable: {exc}")
    overlay: npt.NDArray[np.uint8] | None = None
    estimator = estimator_for(settings.checkpoint, settings.torch_threads)
    try:
        probability, _ = scene_change_probability(settings, site, rec, estimator)
        overlay = change_overlay(probability, estimator.threshold)
    except _IMAGERY_PROBLEMS as exc:
        notes.append(f"no change overlay: {exc}")
    return MapSnapshot(rec, rgb, overlay, footprints, boundary, tuple(notes))


def report_as_of(engine: Engine, site: Site, *, today: date) -> date:
    """The day a site's report is for: its progress as-of day, else its loan's newest score day, else ``today``."""
    latest = progress_repo.latest_progress(engine, site.id)
    if latest is not None:
        return latest[0].as_of
    history = risk_repo.score_history(engine, site.loan_id)
    return history[-1].data.as_of if history else today


def site_activity(engine: Engine, site_id: str, as_of: date, *, days: int = ACTIVITY_DAYS) -> list[SiteDayFeatures]:
    """Daily sensor activity of a site for the ``days`` UTC days ending on ``as_of``."""
    return site_daily_features(engine, site_id, as_of - timedelta(days=days - 1), as_of)


def gather_site_report(
    engine: Engine, settings: Settings, site_id: str, *, now: datetime | None = None, activity_days: int = ACTIVITY_DAYS
) -> SiteReport:
    """Read everything the report shows for one site.

    Args:
        engine: The database.
        settings: Where the scene cache, the archive and the checkpoint are.
        site_id: The site (the caller checks the key's scope).
        now: Generation time, timezone-aware UTC (default: now).
        activity_days: Days of sensor activity charted, ending on the report's as-of day.

    Raises:
        SiteNotFoundError: no such site.
    """
    now = now or datetime.now(UTC)
    site = repo.get_site(engine, site_id)
    latest = progress_repo.latest_progress(engine, site_id)
    summary, points, inputs = latest if latest is not None else (None, [], {})
    scenes = sorted(repo.list_scene_records(engine, site_id), key=lambda r: r.acquired_at_utc)
    scores = tuple(risk_repo.score_history(engine, site.loan_id))
    alerts = tuple(a for a in risk_repo.list_alerts(engine, loan_id=site.loan_id) if a.status != "resolved")
    cases = [c for c in risk_repo.list_cases(engine, status=None) if c.loan_id == site.loan_id]
    case = next((c for c in cases if c.status == "open"), cases[0] if cases else None)
    notes = tuple(risk_repo.case_notes(engine, case.id)) if case is not None else ()
    try:
        borrower: str | None = repo.get_loan(engine, site.loan_id).borrower
    except LookupError:
        borrower = None
    as_of = summary.as_of if summary is not None else (scores[-1].data.as_of if scores else now.date())
    activity = tuple(site_activity(engine, site_id, as_of, days=activity_days))
    report = SiteReport(
        site=site,
        borrower=borrower,
        band=scores[-1].data.band if scores else None,
        summary=summary,
        points=tuple(points),
        inputs=dict(inputs),
        scenes=tuple(scenes),
        activity=activity,
        scores=scores,
        alerts=alerts,
        case=case,
        case_notes=notes,
        snapshot=map_snapshot(settings, site, scenes),
        generated_at_utc=now,
        checkpoint=settings.checkpoint,
    )
    logger.info("site report gathered", extra={"site_id": site_id})
    return report


# ---------------------------------------------------------------- figures (pure)


def _num(value: float | None, unit: str = "", digits: int = 2) -> str:
    """A figure as the API gives it (stored values carry two decimals), without trailing zeros."""
    if value is None:
        return "–"
    return f"{round(value, digits):g}{unit}"


def key_figures(report: SiteReport) -> list[tuple[str, str]]:
    """The report's key figures as (label, text), in the order printed; values as the API gives them."""
    s = report.summary
    if s is None:
        progress = [("Percent complete", "no progress computed yet")]
    else:
        if s.slip_days is None:
            slip = "–"
        else:
            slip = f"{s.slip_days} days {'behind' if s.slip_days >= 0 else 'ahead of'} plan"
        if s.forecast_completion is not None:
            window = (
                f" (range {s.forecast_early or '–'} to {s.forecast_late or 'open'})"
                if s.forecast_early or s.forecast_late
                else ""
            )
            forecast = f"{s.forecast_completion}{window}"
        else:
            forecast = "none (stalled)" if s.stalled else "none"
        progress = [
            ("Percent complete", f"{_num(s.observed_pct, ' %')} observed vs {_num(s.planned_pct, ' %')} planned"),
            ("Confidence band", f"{_num(s.lower_pct, ' %')} to {_num(s.upper_pct, ' %')}"),
            ("Deviation", f"{_num(s.deviation_pp, ' pp')}"),
            ("Slip", slip),
            ("Forecast completion", forecast),
            ("Stalled", "yes" if s.stalled else "no"),
            ("Rate", f"{_num(s.rate_pp_per_week, ' pp/week', 2)}"),
            ("As of", f"{s.as_of}"),
        ]
    score = report.scores[-1].data if report.scores else None
    risk = [
        (
            "Score",
            "not scored" if score is None else f"{round(score.score, 2):g} (band {score.band}, PD {score.pd:.2%})",
        ),
        ("Open alerts", str(sum(a.status == "open" for a in report.alerts))),
        ("Watch-list case", "none" if report.case is None else f"case {report.case.id} ({report.case.status})"),
    ]
    return progress + risk


def scene_counts(report: SiteReport) -> tuple[int, int]:
    """(used, skipped) scenes: the progress run's counts, else the recorded scenes'."""
    if report.summary is not None:
        return report.summary.scenes_used, report.summary.scenes_skipped
    used = sum(r.used for r in report.scenes)
    return used, len(report.scenes) - used


def estimator_text(report: SiteReport) -> str:
    """Which estimator produced the figures (method with checkpoint and sha) and which draws the overlay."""
    method = report.summary.method if report.summary is not None else str(report.inputs.get("method") or "–")
    overlay = report.checkpoint or "spectral-index estimator (no checkpoint)"
    return f"figures: {method}; overlay: {overlay}"


# ---------------------------------------------------------------- PDF (pure)


Style = dict[str, Any]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _t(day: date | datetime) -> float:
    """Matplotlib's date number (days since 1970-01-01 UTC) of a day or an instant."""
    if isinstance(day, datetime):
        return (day.astimezone(UTC) - _EPOCH).total_seconds() / 86400.0
    return float((day - _EPOCH.date()).days)


def _ts(days: Sequence[date | datetime]) -> list[float]:
    return [_t(d) for d in days]


def _date_axis(ax: Axes) -> None:
    locator = AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _draw_snapshot(ax: Axes, snap: MapSnapshot) -> None:
    if snap.rgb is not None:
        ax.imshow(snap.rgb, interpolation="nearest")
    else:
        ax.set_facecolor("#e8ecef")
    if snap.overlay is not None:  # see-through, so the ground under the change stays readable
        ax.imshow(snap.overlay, interpolation="nearest", alpha=0.6)
    for ring in snap.boundary_px:
        ax.plot(ring[:, 0] - 0.5, ring[:, 1] - 0.5, color="#1b1f24", linewidth=1.2)
    for k, (name, rings) in enumerate(snap.footprints_px):
        colour, dash = PHASE_STYLES[k % len(PHASE_STYLES)]
        for j, ring in enumerate(rings):
            (line,) = ax.plot(
                ring[:, 0] - 0.5, ring[:, 1] - 0.5, color=colour, linewidth=1.6, label=name if j == 0 else None
            )
            if dash is not None:
                line.set_dashes(dash)
    all_rings = [*snap.boundary_px, *(r for _, rings in snap.footprints_px for r in rings)]
    if snap.rgb is not None:
        height, width = snap.rgb.shape[:2]
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
    elif all_rings:
        pts = np.concatenate(all_rings)
        pad = 10.0
        ax.set_xlim(pts[:, 0].min() - pad, pts[:, 0].max() + pad)
        ax.set_ylim(pts[:, 1].max() + pad, pts[:, 1].min() - pad)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if snap.footprints_px:
        ax.legend(loc="lower left", fontsize=6, framealpha=0.85, title="planned footprints", title_fontsize=6)


def _draw_progress(ax: Axes, report: SiteReport) -> None:
    s = report.summary
    plan = report.site.plan
    end = max(plan.end, report.as_of)
    if s is not None:
        end = max([end, *(d for d in (s.forecast_completion, s.forecast_late) if d is not None)])
    days = [plan.start + timedelta(days=k) for k in range(0, (end - plan.start).days + 8, 7)]
    ax.plot(_ts(days), [plan.planned_percent(d) for d in days], color="#555555", linestyle="--", label="planned")
    if report.points:
        on = _ts([p.on for p in report.points])
        ax.fill_between(
            on,
            [p.lower_pct for p in report.points],
            [p.upper_pct for p in report.points],
            color="#0072b2",
            alpha=0.2,
            label="confidence band",
        )
        ax.plot(
            on, [p.observed_pct for p in report.points], color="#0072b2", marker="o", markersize=2.5, label="observed"
        )
    if s is not None:
        ax.axvline(_t(s.as_of), color="#999999", linewidth=0.8)
        if s.forecast_early is not None and s.forecast_late is not None:
            ax.axvspan(_t(s.forecast_early), _t(s.forecast_late), color="#e69f00", alpha=0.15, label="forecast range")
        if s.forecast_completion is not None and s.observed_pct is not None:
            ax.plot(_ts([s.as_of, s.forecast_completion]), [s.observed_pct, 100.0], color="#e69f00", label="forecast")
        elif s.stalled:
            ax.annotate("stalled: no forecast", (_t(s.as_of), s.observed_pct or 0.0), fontsize=7, color="#d55e00",
                        xytext=(-4, 8), textcoords="offset points", ha="right")  # fmt: skip
    ax.set_ylim(0, 105)
    ax.set_ylabel("percent complete")
    ax.set_title("Progress against plan", fontsize=9, loc="left")
    ax.legend(loc="upper left", fontsize=7)
    ax.grid(alpha=0.3)
    _date_axis(ax)


def _draw_activity(ax: Axes, report: SiteReport) -> None:
    """Equipment hours per day as bars, the peak workforce as a line (right axis), days without data greyed.

    Absolute figures rather than the activity index: a stall longer than the index's baseline
    window reads as "usual" activity, while zero machine hours cannot be mistaken.
    """
    days = [f.day for f in report.activity]
    hours = [(f.day, f.equipment_hours) for f in report.activity if f.equipment_hours is not None]
    gaps = [f.day for f in report.activity if f.equipment_hours is None and f.workforce is None]
    if hours:
        ax.bar(_ts([d for d, _ in hours]), [h for _, h in hours], width=0.9, color="#009e73", label="equipment hours")
    top = max([h for _, h in hours] + [1.0])
    if gaps:
        ax.bar(_ts(gaps), [top * 0.03] * len(gaps), width=0.9, color="#bbbbbb", label="no sensor data")
    ax.set_ylim(0, top * 1.15)
    ax.set_ylabel("equipment hours / day")
    people = [(f.day, f.workforce) for f in report.activity if f.workforce is not None]
    if people:
        twin = ax.twinx()
        twin.plot(_ts([d for d, _ in people]), [w for _, w in people], color="#cc79a7", linewidth=1.2)
        twin.set_ylim(0, max([w for _, w in people] + [1.0]) * 1.15)
        twin.set_ylabel("workforce (peak)", color="#cc79a7")
    index = [f.activity_index for f in report.activity if f.activity_index is not None]
    title = f"Daily site activity from sensors, {days[0]} to {days[-1]}" if days else "Daily site activity"
    if index:
        title += f"; mean activity index {np.mean(index):.2f} (1 = usual)"
    ax.set_title(title, fontsize=9, loc="left")
    if hours or gaps:
        ax.legend(loc="upper left", fontsize=7)
    if not hours and not people:
        ax.text(0.5, 0.5, "no sensor activity in this window", transform=ax.transAxes, ha="center", fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    _date_axis(ax)


def _draw_scores(ax: Axes, report: SiteReport) -> None:
    if not report.scores:
        ax.text(0.5, 0.5, "not scored yet", transform=ax.transAxes, ha="center", fontsize=8)
        ax.set_axis_off()
        return
    when = _ts([s.scored_at for s in report.scores])
    values = [s.data.score for s in report.scores]
    ax.plot(when, values, color="#1b1f24", marker="o", markersize=3)
    for t, s in zip(when, report.scores, strict=True):
        box = {"boxstyle": "round,pad=0.15", "fc": BAND_COLOURS.get(s.data.band, "#999999"), "lw": 0}
        ax.annotate(s.data.band, (t, s.data.score), fontsize=7, xytext=(0, 5), textcoords="offset points",
                    ha="center", color="#1b1f24", bbox=box)  # fmt: skip
    if len(when) == 1:  # one score: a month either side rather than matplotlib's default years
        ax.set_xlim(when[0] - 30, when[0] + 30)
    ax.set_ylim(0, max(values) * 1.15 + 1)
    ax.set_ylabel("score")
    ax.set_title(f"Score history ({len(values)} scores)", fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    _date_axis(ax)


def _lines(fig: Figure, top: float, lines: Sequence[tuple[str, Style]], *, step: float = 0.0155) -> float:
    """Write lines down the page from ``top`` (figure fraction); returns where the next line goes."""
    y = top
    for text, style in lines:
        fig.text(0.07, y, text, fontsize=style.get("size", 8), weight=style.get("weight", "normal"), va="top")
        y -= step * style.get("size", 8) / 8
    return y


def _clip(text: str, n: int = 110) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _page_one(report: SiteReport) -> Figure:
    site = report.site
    fig = Figure(figsize=_A4_IN)
    head: list[tuple[str, Style]] = [
        (f"SiteWatch site report: {site.name}", {"size": 14, "weight": "bold"}),
        (
            f"{site.id} · loan {site.loan_id}{f' · {report.borrower}' if report.borrower else ''} · {site.region} · "
            f"plan {site.plan.start} to {site.plan.end} · risk band {report.band or 'not scored'}",
            {"size": 8},
        ),
        (f"Generated {report.generated_at_utc.astimezone(UTC):%Y-%m-%d %H:%M} UTC; figures as of {report.as_of}", {}),
    ]
    y = _lines(fig, 0.965, head)
    y = _lines(fig, y - 0.008, [("Key figures", {"size": 10, "weight": "bold"})])
    y = _lines(fig, y, [(f"{label}: {text}", {}) for label, text in key_figures(report)])

    snap = report.snapshot
    ax_map = fig.add_axes((0.07, 0.40, 0.5, y - 0.42))
    _draw_snapshot(ax_map, snap)
    caption: list[tuple[str, Style]] = [
        (
            f"Latest clear scene {snap.scene.acquired_at_utc:%Y-%m-%d}" if snap.scene else "No scene drawn",
            {"weight": "bold"},
        ),
    ]
    if snap.scene is not None:
        caption.append((_clip(snap.scene.scene_id, 40), {"size": 6}))
        cloud = "–" if snap.scene.cloud_pct is None else f"{snap.scene.cloud_pct:.0f} %"
        caption.append((f"cloud {cloud}, {snap.scene.valid_fraction:.0%} of site seen", {"size": 7}))
    caption.append(("True colour (B04, B03, B02)", {"size": 7}))
    caption.append(("change overlay in orange" if snap.overlay is not None else "no change overlay", {"size": 7}))
    caption.append(("planned footprints outlined per phase", {"size": 7}))
    caption += [(_clip(n, 48), {"size": 6}) for n in snap.notes]
    ytext = y - 0.01
    for text, style in caption:
        fig.text(0.60, ytext, text, fontsize=style.get("size", 8), weight=style.get("weight", "normal"), va="top")
        ytext -= 0.0155 * style.get("size", 8) / 8

    ax_progress = fig.add_axes((0.09, 0.07, 0.86, 0.28))
    _draw_progress(ax_progress, report)
    return fig


def _page_two(report: SiteReport) -> Figure:
    fig = Figure(figsize=_A4_IN)
    fig.text(0.07, 0.965, f"{report.site.name}: activity, score, alerts", fontsize=12, weight="bold", va="top")
    _draw_activity(fig.add_axes((0.09, 0.72, 0.86, 0.2)), report)
    _draw_scores(fig.add_axes((0.09, 0.47, 0.86, 0.18)), report)

    lines: list[tuple[str, Style]] = []
    if report.scores:
        score = report.scores[-1].data
        lines.append(
            (
                f"Score {round(score.score, 2):g}, band {score.band}, PD {score.pd:.2%}, confidence "
                f"{score.confidence:.0%}, as of {score.as_of} ({score.config_version})",
                {"size": 9, "weight": "bold"},
            )
        )
        drivers = sorted(score.contributions, key=lambda d: -(d.get("shortfall") or 0))
        lines.append(("Drivers, largest shortfall first (points lost against the best bin):", {}))
        for d in drivers:
            value = "missing" if d.get("value") is None else d.get("value")
            top = " (top driver)" if d.get("driver") in score.top_drivers else ""
            lines.append(
                (
                    _clip(
                        f"  {str(d.get('driver', '')).replace('_', ' ')}: {value}; bin {d.get('bin')}; "
                        f"points {d.get('points')}; shortfall {d.get('shortfall')}{top}"
                    ),
                    {"size": 7},
                )
            )
    lines.append(("", {}))
    open_alerts = list(report.alerts)
    lines.append((f"Alerts not resolved: {len(open_alerts)}", {"size": 9, "weight": "bold"}))
    for a in open_alerts:
        ack = f"; acknowledged by {a.acknowledged_by}: {a.acknowledge_note}" if a.status == "acknowledged" else ""
        lines.append(
            (_clip(f"  [{a.status}] {a.severity}: {a.title} (opened {a.opened_at:%Y-%m-%d}, rule {a.rule_id}){ack}"),
             {"size": 7})
        )  # fmt: skip
    case = report.case
    lines.append(("", {}))
    if case is None:
        lines.append(("Watch-list case: none", {"size": 9, "weight": "bold"}))
    else:
        lines.append(
            (f"Watch-list case {case.id} ({case.status}, {case.severity}), opened {case.opened_at:%Y-%m-%d}",
             {"size": 9, "weight": "bold"})
        )  # fmt: skip
        lines.append((_clip(f"  reason: {case.reason}"), {"size": 7}))
        lines.append((f"  response plan: {case.response_plan or 'none yet'}", {"size": 7}))
        for t in case.tasks:
            lines.append(
                (_clip(f"  task [{t.status}] {t.department}: {t.title} ({t.owner}, due {t.due_date})"), {"size": 7})
            )
        for n in report.case_notes:
            lines.append((_clip(f"  note {n.at_utc:%Y-%m-%d %H:%M} by {n.by}: {n.note}"), {"size": 7}))
    used, skipped = scene_counts(report)
    lines += [
        ("", {}),
        ("Provenance", {"size": 9, "weight": "bold"}),
        (f"  scenes: {used} used, {skipped} skipped (recorded scenes: {len(report.scenes)})", {"size": 7}),
        (_clip(f"  estimator: {estimator_text(report)}"), {"size": 7}),
        (f"  inputs sha256: {report.inputs.get('inputs_sha256') or '–'}", {"size": 7}),
        (f"  generated at {report.generated_at_utc.astimezone(UTC).isoformat(timespec='seconds')}", {"size": 7}),
    ]
    _lines(fig, 0.40, lines)
    return fig


def report_pdf(report: SiteReport) -> bytes:
    """Render a site report as a two-page A4 PDF (pure: the same report gives the same bytes)."""
    buf = io.BytesIO()
    metadata = {
        "Title": f"SiteWatch site report {report.site.id}",
        "Subject": f"Progress and risk of site {report.site.id}, loan {report.site.loan_id}",
        "Creator": "SiteWatch",
        "CreationDate": None,
    }
    with _render_lock, matplotlib.rc_context({"pdf.fonttype": 42, "font.family": "DejaVu Sans"}):
        with PdfPages(buf, metadata=metadata) as pdf:
            for fig in (_page_one(report), _page_two(report)):
                pdf.savefig(fig)
    return buf.getvalue()
