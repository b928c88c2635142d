"""A deterministic simulator of Sentinel-2 L2A-like scenes over a site. Pure numpy, no I/O.

Each scene is generated on the site's 10 m UTM grid from three layers:

1. a static landscape (fields, grass, existing buildings, a pond) drawn once per site and seed;
2. the construction state of every pixel inside the plan's phase footprints on that day, driven
   by the site's true curve (:func:`aoi.demo.fate_curve`, or an on-track curve when the site has
   no fate): pixels move vegetation -> cleared soil -> concrete -> roof in a spatially coherent
   order, and revert to vegetation when a cancelled pad regrows;
3. the atmosphere and the sensor of that day: hemisphere-aware vegetation season, haze, clouds
   with displaced shadows, thin cirrus, sub-pixel misregistration and noise, and an SCL layer
   that is mostly right, misses cloud edges and (as the real one does) sometimes calls a bright
   new roof "cloud".

Digital numbers follow the L2A encoding of the acquisition day (``+1000`` from processing
baseline 04.00, 2022-01-25), so readers have a real harmonisation to undo.

The same ``seed`` gives the same bytes; a given day's scene does not depend on the requested
date range (dates sit on a fixed 5-day revisit lattice and each day has its own random stream).
"""

from __future__ import annotations

import logging
import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from aoi.demo import Fate, FateCurve, fate_curve
from aoi.model import Site
from geo import Grid, grid_for, rasterize_mask
from imagery.sentinel2 import S2_BANDS, Scl, harmonisation_for, processing_baseline_for

logger = logging.getLogger(__name__)

#: Surface reflectance spectra (B02, B03, B04, B08, B11, B12), unitless 0-1. Values are typical
#: of ESA / USGS spectral library figures resampled to Sentinel-2 bands.
_GREEN_VEG = np.array([0.030, 0.065, 0.040, 0.380, 0.190, 0.090], dtype=np.float32)
_DRY_VEG = np.array([0.060, 0.085, 0.110, 0.230, 0.300, 0.210], dtype=np.float32)
_FIELD_SOIL = np.array([0.070, 0.095, 0.125, 0.190, 0.290, 0.240], dtype=np.float32)
_FRESH_SOIL = np.array([0.100, 0.130, 0.165, 0.215, 0.330, 0.290], dtype=np.float32)
_CONCRETE = np.array([0.175, 0.195, 0.215, 0.245, 0.300, 0.265], dtype=np.float32)
_URBAN = np.array([0.110, 0.115, 0.125, 0.175, 0.215, 0.195], dtype=np.float32)
_WATER = np.array([0.050, 0.060, 0.035, 0.020, 0.010, 0.006], dtype=np.float32)
_CLOUD = np.array([0.520, 0.510, 0.505, 0.540, 0.360, 0.250], dtype=np.float32)
_CIRRUS = np.array([0.080, 0.070, 0.065, 0.070, 0.045, 0.030], dtype=np.float32)
#: Haze adds path radiance mostly at short wavelengths (Rayleigh/aerosol, roughly lambda^-2).
_HAZE = np.array([0.060, 0.045, 0.032, 0.016, 0.004, 0.002], dtype=np.float32)

#: Roof materials: (name, spectrum, bright). Bright roofs are the ones L2A's SCL confuses with cloud.
ROOFS: tuple[tuple[str, npt.NDArray[np.float32], bool], ...] = (
    ("white_membrane", np.array([0.420, 0.440, 0.450, 0.470, 0.420, 0.360], dtype=np.float32), True),
    ("galvanised_metal", np.array([0.300, 0.310, 0.315, 0.330, 0.300, 0.270], dtype=np.float32), True),
    ("red_tile", np.array([0.070, 0.080, 0.190, 0.260, 0.330, 0.280], dtype=np.float32), False),
    ("dark_bitumen", np.array([0.060, 0.065, 0.070, 0.080, 0.090, 0.085], dtype=np.float32), False),
)
#: Photovoltaic modules: dark and flat (used for phases of sites named "... solar ...").
_PV = np.array([0.060, 0.058, 0.050, 0.065, 0.055, 0.045], dtype=np.float32)

#: Construction states of a pixel, in the order a pixel goes through them.
STATE_UNTOUCHED, STATE_CLEARED, STATE_CONCRETE, STATE_ROOF = 0, 1, 2, 3

#: Landscape classes outside the works.
_COVER_GRASS, _COVER_FIELD, _COVER_URBAN, _COVER_WATER = 0, 1, 2, 3

#: A fixed date lattice so a day's scene does not depend on the requested range (S2A's first L1C day).
_LATTICE_ORIGIN = date(2015, 7, 4)

#: Phase names that mean site preparation (clearing only, no roofs).
_GROUNDWORK_WORDS = re.compile(r"earth|clear|grad|site ?prep|ground|excavat|levell", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    """Knobs of the simulator; the defaults give a plausible central-European archive.

    Attributes:
        revisit_days: Days between acquisitions (Sentinel-2A+B: 5).
        clear_prob: Probability that a day is cloud-free over the site.
        overcast_prob: Probability that a day is fully overcast.
        misregistration_px: Standard deviation of the per-date shift, in pixels.
        noise: Standard deviation of sensor noise, in reflectance units.
        wrong_scl_prob: Probability, per date and bright roof, that SCL labels the roof cloud.
    """

    revisit_days: int = 5
    clear_prob: float = 0.45
    overcast_prob: float = 0.12
    misregistration_px: float = 0.25
    noise: float = 0.004
    wrong_scl_prob: float = 0.6


@dataclass(frozen=True, slots=True)
class SimulatedScene:
    """One simulated L2A scene on the site grid and the truth behind it.

    Attributes:
        scene_id: Unique id, Sentinel-2 style (``S2A_MSIL2A_YYYYMMDDTHHMMSS_N0400_<site>``).
        acquired_at_utc: Sensing time, timezone-aware UTC.
        platform: "sentinel-2a" or "sentinel-2b".
        processing_baseline: "03.01" or "04.00".
        offset_dn: What was added to every DN (1000 from baseline 04.00, else 0).
        dn: Band name -> (y, x) uint16 digital numbers (``reflectance * 10000 + offset_dn``; 0 = no data).
        scl: (y, x) uint8 ESA scene classification.
        cloud_pct: Share of pixels SCL labels cloud (8, 9, 10), 0-100 (``eo:cloud_cover``).
        true_percent: The site's true percent complete that day, 0-100.
        phase_fractions: True done share of each phase, 0-1, in plan order.
        change: (y, x) bool, True where the ground differs from the pre-construction state.
    """

    scene_id: str
    acquired_at_utc: datetime
    platform: str
    processing_baseline: str
    offset_dn: int
    dn: dict[str, npt.NDArray[np.uint16]]
    scl: npt.NDArray[np.uint8]
    cloud_pct: float
    true_percent: float
    phase_fractions: tuple[float, ...]
    change: npt.NDArray[np.bool_]


@dataclass(slots=True)
class _Landscape:
    """Static per-site layers, all (y, x) on the grid."""

    cover: npt.NDArray[np.int8]
    texture: npt.NDArray[np.float32]
    vigour: npt.NDArray[np.float32]
    phase_masks: list[npt.NDArray[np.bool_]]
    phase_ranks: list[npt.NDArray[np.float32]]
    groundwork: list[bool]
    roof_spectra: list[npt.NDArray[np.float32]]
    roof_bright: list[bool]
    lat: float
    lon: float
    site_slug: str


def site_grid(site: Site, *, resolution_m: float = 10.0, buffer_m: float = 100.0) -> Grid:
    """The grid scenes of a site are simulated and analysed on: UTM zone of the site, 10 m, 100 m margin."""
    return grid_for(site.boundary_wgs84, resolution_m=resolution_m, buffer_m=buffer_m)


def truth_curve(site: Site) -> FateCurve:
    """The site's true progress curve: its demo fate, or on-track with its plan when it has none."""
    return fate_curve(site) or FateCurve(Fate.ON_TRACK, site.plan)


def footprint_labels(site: Site, grid: Grid) -> npt.NDArray[np.uint8]:
    """Phase footprints burned on a grid.

    Returns:
        (y, x) uint8: 0 outside every footprint, ``k + 1`` inside phase ``k``. Where footprints
        overlap (a site-wide earthworks pad under the halls), the later phase wins.
    """
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for k, phase in enumerate(site.plan.phases):
        labels[rasterize_mask(phase.footprint_wgs84, grid)] = k + 1
    return labels


def acquisition_dates(site_id: str, start: date, end: date, *, revisit_days: int = 5) -> list[date]:
    """Days with an acquisition in ``[start, end]``, on a fixed per-site revisit lattice."""
    if revisit_days < 1:
        raise ValueError(f"revisit_days must be >= 1, got {revisit_days}")
    if end < start:
        return []
    origin = _LATTICE_ORIGIN + timedelta(days=zlib.crc32(site_id.encode()) % revisit_days)
    k0 = max(0, math.ceil((start - origin).days / revisit_days))
    days: list[date] = []
    d = origin + timedelta(days=k0 * revisit_days)
    while d <= end:
        if d >= start:
            days.append(d)
        d += timedelta(days=revisit_days)
    return days


def simulate_scenes(
    site: Site,
    start: date,
    end: date,
    *,
    seed: int,
    grid: Grid | None = None,
    options: SimulationOptions | None = None,
) -> Iterator[SimulatedScene]:
    """Yield the simulated scenes of a site between two days (inclusive), oldest first.

    Args:
        site: The site; its plan's footprints are where construction happens.
        start: First day.
        end: Last day.
        seed: Random seed; the same seed gives identical scenes.
        grid: Grid to simulate on; default :func:`site_grid`.
        options: Simulator knobs.

    Yields:
        One :class:`SimulatedScene` per acquisition day, bands (y, x) on ``grid``.
    """
    opts = options or SimulationOptions()
    grid = grid or site_grid(site)
    curve = truth_curve(site)
    site_key = zlib.crc32(site.id.encode())
    land = _landscape(site, grid, np.random.default_rng([seed, site_key]))
    days = acquisition_dates(site.id, start, end, revisit_days=opts.revisit_days)
    for day in days:
        rng = np.random.default_rng([seed, site_key, day.toordinal()])
        yield _scene(site, curve, land, day, rng, opts)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> npt.NDArray[np.float32]:
    """A spatially smooth random field (zero mean, unit variance) with features about ``scale_px`` wide.

    Cheap at any size: white noise on a coarse lattice, upsampled with cubic splines.
    """
    h, w = shape
    step = max(1.0, float(scale_px))
    coarse = rng.standard_normal((math.ceil(h / step) + 4, math.ceil(w / step) + 4)).astype(np.float32)
    # Bilinear on the lattice is enough for clouds and haze and four times cheaper than cubic.
    up = ndimage.zoom(coarse, step, order=1, mode="nearest", grid_mode=False)
    off = int(step)
    out = up[off : off + h, off : off + w]
    if out.shape != shape:  # zoom rounds; pad by edge values if it came out short
        out = np.pad(out, ((0, h - out.shape[0]), (0, w - out.shape[1])), mode="edge")
    sd = float(out.std()) or 1.0
    normed: npt.NDArray[np.float32] = ((out - out.mean()) / sd).astype(np.float32)
    return normed


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-") or "site"


def _landscape(site: Site, grid: Grid, rng: np.random.Generator) -> _Landscape:
    shape = grid.shape
    # Background cover from one smooth field: mostly grass, some fields, a little town and a pond.
    f = smooth_field(rng, shape, 18.0)
    q = np.quantile(f, [0.62, 0.88, 0.96])
    cover = np.full(shape, _COVER_GRASS, dtype=np.int8)
    cover[f > q[0]] = _COVER_FIELD
    cover[f > q[1]] = _COVER_URBAN
    cover[f > q[2]] = _COVER_WATER
    texture = (1.0 + 0.05 * smooth_field(rng, shape, 2.0)).astype(np.float32)
    vigour = np.clip(0.85 + 0.12 * smooth_field(rng, shape, 6.0), 0.5, 1.1).astype(np.float32)

    # Works: every footprint starts as grass (greenfield), whatever the background was.
    masks = [rasterize_mask(p.footprint_wgs84, grid) for p in site.plan.phases]
    for m in masks:
        cover[m] = _COVER_GRASS
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    ranks: list[npt.NDArray[np.float32]] = []
    groundwork: list[bool] = []
    for k, (phase, m) in enumerate(zip(site.plan.phases, masks, strict=True)):
        # Work advances from one side in a random direction, with a smooth, irregular front.
        angle = rng.uniform(0, 2 * math.pi)
        ramp = (math.cos(angle) * xs + math.sin(angle) * ys) / max(shape)
        order = ramp * 6.0 + 0.6 * smooth_field(rng, shape, 5.0)
        rank = np.zeros(shape, dtype=np.float32)
        n = int(m.sum())
        if n:
            idx = np.argsort(order[m], kind="stable")
            r = np.empty(n, dtype=np.float32)
            r[idx] = (np.arange(n, dtype=np.float32) + 0.5) / n
            rank[m] = r
        ranks.append(rank)
        covers_other = any(
            j != k and masks[j].sum() > 0 and (masks[j] & m).sum() >= 0.9 * masks[j].sum() for j in range(len(masks))
        )
        groundwork.append(bool(_GROUNDWORK_WORDS.search(phase.name)) or covers_other)

    solar = "solar" in site.name.lower() or "solar" in site.id.lower()
    roof_spectra: list[npt.NDArray[np.float32]] = []
    roof_bright: list[bool] = []
    for _ in site.plan.phases:
        if solar:
            roof_spectra.append(_PV)
            roof_bright.append(False)
        else:
            _, spec, bright = ROOFS[int(rng.choice(len(ROOFS), p=[0.4, 0.25, 0.2, 0.15]))]
            roof_spectra.append(spec)
            roof_bright.append(bright)
    c = site.boundary_wgs84.centroid
    return _Landscape(
        cover,
        texture,
        vigour,
        masks,
        ranks,
        groundwork,
        roof_spectra,
        roof_bright,
        float(c.y),
        float(c.x),
        _slug(site.id),
    )


def _greenness(day: date, lat: float) -> float:
    """Vegetation greenness 0-1 on a day: peaks late June north, late December south; flatter near the equator."""
    peak = 172 if lat >= 0 else 355
    g = 0.5 + 0.5 * math.cos(2 * math.pi * (day.timetuple().tm_yday - peak) / 365.25)
    amplitude = min(1.0, max(0.25, abs(lat) / 35.0))
    return 1.0 - amplitude * (1.0 - g) * 0.85


def construction_state(
    land_masks: list[npt.NDArray[np.bool_]],
    ranks: list[npt.NDArray[np.float32]],
    groundwork: list[bool],
    fractions: tuple[float, ...],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """Construction state of every pixel and which phase's roof it carries.

    Args:
        land_masks: Per phase, a (y, x) bool footprint.
        ranks: Per phase, a (y, x) float rank in [0, 1): the order its pixels are worked on.
        groundwork: Per phase, True for clearing-only phases (earthworks).
        fractions: Per phase, true done share 0-1.

    Returns:
        ``state`` (y, x) int8 in {0 untouched, 1 cleared, 2 concrete, 3 roof} and ``roof_of``
        (y, x) int8, the phase index whose roof covers the pixel (-1 where none).
    """
    shape = land_masks[0].shape if land_masks else (0, 0)
    state = np.zeros(shape, dtype=np.int8)
    roof_of = np.full(shape, -1, dtype=np.int8)
    for k, (m, r, ground, f) in enumerate(zip(land_masks, ranks, groundwork, fractions, strict=True)):
        if f <= 0:
            continue
        if ground:
            s = np.where(m & (r < f), STATE_CLEARED, STATE_UNTOUCHED)
        else:
            # Building: a pixel is cleared first, gets slab/foundations, then its roof.
            s = np.zeros(shape, dtype=np.int8)
            s[m & (f > r * 0.3)] = STATE_CLEARED
            s[m & (f > 0.15 + r * 0.45)] = STATE_CONCRETE
            roofed = m & (f >= 0.45 + r * 0.55)
            s[roofed] = STATE_ROOF
            roof_of[roofed] = k
        np.maximum(state, s.astype(np.int8), out=state)
    return state, roof_of


def _scene(
    site: Site, curve: FateCurve, land: _Landscape, day: date, rng: np.random.Generator, opts: SimulationOptions
) -> SimulatedScene:
    shape = land.cover.shape
    n_phases = len(site.plan.phases)
    fractions = tuple(float(np.clip(curve.phase_fraction(k, day), 0.0, 1.0)) for k in range(n_phases))
    percent = float(curve.percent(day))
    state, roof_of = construction_state(land.phase_masks, land.phase_ranks, land.groundwork, fractions)

    # Stage 1: the ground. Vegetation follows the season; fields are green only near the peak.
    g = _greenness(day, land.lat)
    veg = g * _GREEN_VEG + (1 - g) * _DRY_VEG
    crop = g**3 * _GREEN_VEG + (1 - g**3) * _FIELD_SOIL
    surf = np.empty((len(S2_BANDS), *shape), dtype=np.float32)
    vig = land.vigour
    for b in range(len(S2_BANDS)):
        # Greener pixels (vigour) have more NIR and less red; blend around the seasonal spectrum.
        grass = vig * veg[b] + (1 - vig) * _DRY_VEG[b]
        layer = np.where(land.cover == _COVER_GRASS, grass, crop[b])
        layer = np.where(land.cover == _COVER_URBAN, _URBAN[b], layer)
        layer = np.where(land.cover == _COVER_WATER, _WATER[b], layer)
        layer = np.where(state == STATE_CLEARED, _FRESH_SOIL[b], layer)
        layer = np.where(state == STATE_CONCRETE, _CONCRETE[b], layer)
        surf[b] = layer
    for k in range(n_phases):
        roofed = roof_of == k
        if roofed.any():
            surf[:, roofed] = land.roof_spectra[k][:, None]
    surf *= land.texture

    # Stage 2: misregistration between dates (sub-pixel, bilinear).
    dy, dx = rng.normal(0.0, opts.misregistration_px, size=2)
    if abs(dy) > 1e-3 or abs(dx) > 1e-3:
        surf = ndimage.shift(surf, (0.0, dy, dx), order=1, mode="nearest")

    # Stage 3: SCL of the ground, from the (shifted) spectra, as the L2A processor would.
    b03, b04, b08 = surf[1], surf[2], surf[3]
    ndvi = (b08 - b04) / np.maximum(b08 + b04, 1e-6)
    ndwi = (b03 - b08) / np.maximum(b03 + b08, 1e-6)
    scl = np.full(shape, Scl.NOT_VEGETATED, dtype=np.uint8)
    scl[ndvi > 0.35] = Scl.VEGETATION
    scl[ndwi > 0.2] = Scl.WATER

    # Stage 4: atmosphere. Haze, clouds, their shadows (displaced away from the sun), thin cirrus.
    cover = _cloud_cover_target(rng, opts)
    pad = 16
    big = (shape[0] + 2 * pad, shape[1] + 2 * pad)
    field_scale = float(rng.uniform(8.0, 30.0))
    opacity_big = np.zeros(big, dtype=np.float32)
    if cover >= 0.999:
        opacity_big[:] = 1.0
    elif cover > 0:
        cloud_field = smooth_field(rng, big, field_scale)
        thr = float(np.quantile(cloud_field, 1.0 - cover))
        opacity_big = np.clip((cloud_field - thr) / 0.6, 0.0, 1.0)
    opacity = opacity_big[pad:-pad, pad:-pad]
    # Sun from the equator side at ~10:30: shadows fall poleward and west of their cloud.
    sy = int(rng.integers(5, pad)) * (1 if land.lat >= 0 else -1)
    sx = int(rng.integers(2, 8))
    shadow = opacity_big[pad + sy : pad + sy + shape[0], pad + sx : pad + sx + shape[1]]
    shadow = np.clip(shadow - opacity, 0.0, 1.0)
    haze = float(rng.uniform(0.0, 1.0)) ** 2 * 0.8
    haze_map = np.zeros(shape, dtype=np.float32)
    if haze > 0.02:
        haze_map = haze * np.clip(1.0 + 0.4 * smooth_field(rng, shape, 25.0), 0.2, 2.0)
    cirrus = np.zeros(shape, dtype=np.float32)
    if rng.random() < 0.12:
        cirrus = np.clip(0.6 * smooth_field(rng, shape, 20.0) + 0.2, 0.0, 1.0)

    toa = surf * (1.0 - 0.65 * shadow)[None]
    toa += _HAZE[:, None, None] * haze_map[None]
    toa += _CIRRUS[:, None, None] * cirrus[None]
    toa = toa * (1.0 - opacity)[None] + _CLOUD[:, None, None] * opacity[None]
    toa += rng.normal(0.0, opts.noise, size=toa.shape).astype(np.float32)

    # Stage 5: SCL of the atmosphere. Thin cloud edges (opacity < 0.25) slip through, as in L2A.
    scl[(shadow > 0.3) & (opacity < 0.2)] = Scl.CLOUD_SHADOW
    scl[(cirrus > 0.35) & (opacity < 0.25)] = Scl.THIN_CIRRUS
    scl[opacity > 0.25] = Scl.CLOUD_MEDIUM_PROBABILITY
    scl[opacity > 0.6] = Scl.CLOUD_HIGH_PROBABILITY
    # The known L2A failure: bright new roofs and fresh concrete labelled cloud on clear days.
    for k in range(n_phases):
        if land.roof_bright[k] and rng.random() < opts.wrong_scl_prob:
            scl[(roof_of == k) & (opacity < 0.25)] = Scl.CLOUD_HIGH_PROBABILITY
    if rng.random() < 0.15:
        scl[(state == STATE_CONCRETE) & (opacity < 0.25)] = Scl.CLOUD_MEDIUM_PROBABILITY

    # Stage 6: encode as L2A digital numbers of the day's processing baseline.
    baseline = processing_baseline_for(day)
    scale, offset = harmonisation_for(baseline)
    offset_dn = round(-offset / scale)
    dn_all = np.clip(np.rint(toa * 10000.0) + offset_dn, 1, 65535).astype(np.uint16)
    dn = {band: dn_all[i] for i, band in enumerate(S2_BANDS)}
    cloud_pct = 100.0 * float(np.isin(scl, (8, 9, 10)).mean())

    # Sensing at about 10:30 local solar time, kept on the same UTC day.
    utc_hours = min(23.5, max(0.25, 10.5 - land.lon / 15.0))
    acquired = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=utc_hours)
    acquired = acquired.replace(microsecond=0)
    lattice_k = (day - _LATTICE_ORIGIN).days // opts.revisit_days
    unit = "A" if lattice_k % 2 == 0 else "B"
    scene_id = f"S2{unit}_MSIL2A_{acquired:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}_{land.site_slug}"
    return SimulatedScene(
        scene_id=scene_id,
        acquired_at_utc=acquired,
        platform=f"sentinel-2{unit.lower()}",
        processing_baseline=baseline,
        offset_dn=offset_dn,
        dn=dn,
        scl=scl,
        cloud_pct=cloud_pct,
        true_percent=percent,
        phase_fractions=fractions,
        change=state >= STATE_CLEARED,
    )


def _cloud_cover_target(rng: np.random.Generator, opts: SimulationOptions) -> float:
    u = rng.random()
    if u < opts.clear_prob:
        return 0.0
    if u < opts.clear_prob + opts.overcast_prob:
        return 1.0
    return float(rng.beta(0.8, 1.2))
