"""The points-based scorecard: its configuration and the vectorised scoring of many loans (pure).

How a score is made (the numbers come from the versioned YAML file, never from this code):

1. Each driver bins one input feature with ``np.digitize`` over its ``edges``: bin ``i`` holds
   ``edges[i-1] <= x < edges[i]`` (bin 0 is below the first edge, the last bin at or above the
   last edge). Each bin earns ``points[i]``.
2. A missing feature earns the driver's ``missing_points``, which the configuration must keep
   at or below the median bin (neutral to cautious: missing is never good news); it lowers the
   confidence. A feature that does not apply (site activity once the works are complete) earns
   ``not_applicable_points`` when the driver defines them, else it counts as missing.
3. ``score = clip(base_points + sum(points), min_score, max_score)``.
4. The score maps to odds (good:bad) on a points-to-double-odds scale::

       odds = target_odds * 2 ** ((score - target_score) / pdo)      pd = 1 / (1 + odds)

   so ``pdo`` more points halve the PD-like figure's odds of default (Siddiqi, *Credit Risk
   Scorecards*, ch. 6 "Scaling").
5. The band is the best band whose ``min_score`` the score reaches; each band has a colour.
6. A driver's shortfall is its best bin's points minus the points it earned; the top drivers
   are the largest shortfalls (the reasons a loan is not rated better, worst first).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

from risk.errors import ScorecardInvalidError
from risk.records import FEATURE_FIELDS, DriverContribution, RiskAssessment, RiskInputs

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: Bin index recorded for a missing feature, and for one that does not apply.
MISSING_BIN = -1
NOT_APPLICABLE_BIN = -2


@dataclass(frozen=True, slots=True)
class Driver:
    """One binned driver of the scorecard.

    Attributes:
        name: Driver name, shown as a reason.
        feature: Input feature it bins (a key of :meth:`RiskInputs.features`).
        edges: Strictly increasing bin edges (len ``k``).
        points: Points per bin (len ``k + 1``).
        missing_points: Points when the feature is missing.
        not_applicable_points: Points when the feature does not apply (None: treat as missing).
        weight: Share of the confidence figure this driver stands for (default: its points range).
        description: What the driver measures, for reports.
    """

    name: str
    feature: str
    edges: tuple[float, ...]
    points: tuple[float, ...]
    missing_points: float
    not_applicable_points: float | None
    weight: float
    description: str = ""

    @property
    def best_points(self) -> float:
        """The most points this driver can earn."""
        return max(self.points)

    def bin_label(self, index: int) -> str:
        """Human label of a bin index (or of the missing / not-applicable markers)."""
        if index == MISSING_BIN:
            return "missing"
        if index == NOT_APPLICABLE_BIN:
            return "not applicable"
        if index == 0:
            return f"< {self.edges[0]:g}"
        if index == len(self.edges):
            return f">= {self.edges[-1]:g}"
        return f"[{self.edges[index - 1]:g}, {self.edges[index]:g})"


@dataclass(frozen=True, slots=True)
class Band:
    """A rating band: the lowest score that earns it (None for the last band) and its colour."""

    name: str
    min_score: float | None
    colour: str


@dataclass(frozen=True, slots=True)
class Scorecard:
    """A versioned scorecard configuration (see the module docstring for the arithmetic).

    Attributes:
        version: Version label, e.g. "scorecard-v1" (stored with every score).
        sha256: Hash of the configuration text it was read from.
        base_points: Points every loan starts from.
        target_score: Score at which the odds are ``target_odds``.
        target_odds: Good:bad odds at ``target_score``.
        pdo: Points to double the odds.
        min_score: Lower clip of the scale.
        max_score: Upper clip of the scale.
        bands: Best band first.
        drivers: In report order.
        top_drivers: How many reasons to report per loan.
        min_shortfall: A driver is a reason only when it costs at least this many points.
        features: Settings of the feature derivation (repayment, activity, market), as given.
    """

    version: str
    sha256: str
    base_points: float
    target_score: float
    target_odds: float
    pdo: float
    min_score: float
    max_score: float
    bands: tuple[Band, ...]
    drivers: tuple[Driver, ...]
    top_drivers: int
    min_shortfall: float
    features: Mapping[str, Any]

    def pd_for(self, score: float) -> float:
        """PD-like figure for one score."""
        return float(_pd(self, np.asarray([score], dtype=np.float64))[0])


# ---------------------------------------------------------------- configuration


def _num(doc: Mapping[str, Any], key: str, where: str, problems: list[str]) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.append(f"{where}.{key}: a finite number is required, got {value!r}")
        return math.nan
    return float(value)


def parse_scorecard(doc: Any, *, text: str = "", source: str = "scorecard") -> Scorecard:
    """Validate a scorecard document (parsed YAML) and build the :class:`Scorecard`.

    Args:
        doc: The parsed YAML mapping.
        text: The text it was parsed from (hashed into ``sha256``).
        source: Where it came from, for error messages.

    Raises:
        ScorecardInvalidError: listing every problem found.
    """
    problems: list[str] = []
    if not isinstance(doc, Mapping):
        raise ScorecardInvalidError(source, ["the document must be a mapping"])
    version = doc.get("version")
    if not isinstance(version, str) or not version:
        problems.append("version: a non-empty string is required")
    raw_scale = doc.get("scale")
    scale: Mapping[str, Any] = raw_scale if isinstance(raw_scale, Mapping) else {}
    if not scale:
        problems.append("scale: a mapping is required")
    base = _num(scale, "base_points", "scale", problems)
    target_score = _num(scale, "target_score", "scale", problems)
    target_odds = _num(scale, "target_odds", "scale", problems)
    pdo = _num(scale, "pdo", "scale", problems)
    lo = _num(scale, "min_score", "scale", problems)
    hi = _num(scale, "max_score", "scale", problems)
    if target_odds <= 0 or pdo <= 0:
        problems.append("scale: target_odds and pdo must be > 0")
    if lo >= hi:
        problems.append("scale: min_score must be below max_score")
    bands = _bands(doc.get("bands"), problems)
    drivers = _drivers(doc.get("drivers"), problems)
    top = doc.get("top_drivers", 3)
    if not isinstance(top, int) or top < 1:
        problems.append(f"top_drivers: a positive integer is required, got {top!r}")
        top = 3
    min_shortfall = doc.get("top_driver_min_shortfall", 0)
    if not _numbers([min_shortfall]) or min_shortfall < 0:
        problems.append(f"top_driver_min_shortfall: a number >= 0 is required, got {min_shortfall!r}")
        min_shortfall = 0
    features = doc.get("features", {})
    if not isinstance(features, Mapping):
        problems.append("features: a mapping is required")
        features = {}
    if problems:
        raise ScorecardInvalidError(source, problems)
    return Scorecard(
        version=str(version),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        base_points=base,
        target_score=target_score,
        target_odds=target_odds,
        pdo=pdo,
        min_score=lo,
        max_score=hi,
        bands=bands,
        drivers=drivers,
        top_drivers=top,
        min_shortfall=float(min_shortfall),
        features=dict(features),
    )


def _bands(raw: Any, problems: list[str]) -> tuple[Band, ...]:
    if not isinstance(raw, list) or len(raw) < 2:
        problems.append("bands: a list of at least two bands is required")
        return ()
    bands: list[Band] = []
    for k, item in enumerate(raw):
        where = f"bands[{k}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("band"), str):
            problems.append(f"{where}: a mapping with a 'band' name is required")
            continue
        last = k == len(raw) - 1
        min_score = item.get("min_score")
        if last and min_score is not None:
            problems.append(f"{where}.min_score: the last band takes every lower score, leave it null")
        if not last:
            min_score = _num(item, "min_score", where, problems)
        colour = item.get("colour")
        if colour not in ("green", "amber", "red"):
            problems.append(f"{where}.colour: one of green, amber, red, got {colour!r}")
        bands.append(Band(item["band"], None if min_score is None else float(min_score), str(colour)))
    mins = [b.min_score for b in bands if b.min_score is not None]
    if any(a <= b for a, b in itertools.pairwise(mins)):
        problems.append("bands: min_score must fall strictly from the best band to the worst")
    return tuple(bands)


def _drivers(raw: Any, problems: list[str]) -> tuple[Driver, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append("drivers: a non-empty list is required")
        return ()
    drivers: list[Driver] = []
    names: set[str] = set()
    for k, item in enumerate(raw):
        where = f"drivers[{k}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: a mapping is required")
            continue
        name = item.get("name")
        where = f"drivers[{k}] ({name})"
        if not isinstance(name, str) or not name or name in names:
            problems.append(f"{where}.name: a unique non-empty name is required")
            continue
        names.add(name)
        feature = item.get("feature", name)
        edges = item.get("edges")
        points = item.get("points")
        if not _numbers(edges) or not _numbers(points):
            problems.append(f"{where}: edges and points must be lists of numbers")
            continue
        if any(b <= a for a, b in itertools.pairwise(edges)):
            problems.append(f"{where}.edges: must increase strictly")
        if len(points) != len(edges) + 1:
            problems.append(f"{where}.points: {len(edges) + 1} values needed for {len(edges)} edges")
            continue
        missing = _num(item, "missing_points", where, problems)
        median = float(np.median(points))
        if missing > median:
            problems.append(
                f"{where}.missing_points: {missing:g} is above the median bin ({median:g}); "
                "a missing input must score neutral to cautious"
            )
        na = item.get("not_applicable_points")
        if na is not None and not _numbers([na]):
            problems.append(f"{where}.not_applicable_points: a number or null is required")
            na = None
        weight = item.get("weight", max(points) - min(points))
        if not _numbers([weight]) or weight < 0:
            problems.append(f"{where}.weight: a number >= 0 is required")
            weight = 0.0
        drivers.append(
            Driver(
                name=name,
                feature=str(feature),
                edges=tuple(float(e) for e in edges),
                points=tuple(float(p) for p in points),
                missing_points=missing,
                not_applicable_points=None if na is None else float(na),
                weight=float(weight),
                description=str(item.get("description", "")),
            )
        )
    if drivers and sum(d.weight for d in drivers) <= 0:
        problems.append("drivers: the weights must not all be zero")
    return tuple(drivers)


def _numbers(values: Any) -> TypeGuard[list[float]]:
    return isinstance(values, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


# ---------------------------------------------------------------- scoring


@dataclass(frozen=True, slots=True)
class ScoredBook:
    """Scores of ``n`` loans against a scorecard with ``d`` drivers (arrays, row = loan).

    Attributes:
        score: (n,) points on the scale.
        pd: (n,) PD-like figure, 0-1.
        band: (n,) band index into ``Scorecard.bands`` (0 = best).
        confidence: (n,) share of driver weight with known inputs, 0-1.
        points: (n, d) points earned per driver.
        bins: (n, d) bin index per driver (``MISSING_BIN``, ``NOT_APPLICABLE_BIN``).
        shortfall: (n, d) best points minus earned points.
        top: (n, k) driver indices of the largest shortfalls (> 0 and >= ``min_shortfall``),
            worst first; -1 pads.
    """

    score: FloatArray
    pd: FloatArray
    band: IntArray
    confidence: FloatArray
    points: FloatArray
    bins: IntArray
    shortfall: FloatArray
    top: IntArray


def _pd(card: Scorecard, score: FloatArray) -> FloatArray:
    odds = card.target_odds * np.exp2((score - card.target_score) / card.pdo)
    result: FloatArray = 1.0 / (1.0 + odds)
    return result


def score_columns(
    card: Scorecard,
    features: Mapping[str, FloatArray],
    not_applicable: Mapping[str, BoolArray] | None = None,
) -> ScoredBook:
    """Score many loans at once.

    Args:
        card: The scorecard.
        features: Per feature name, an (n,) float array; NaN marks a missing value. A feature a
            driver needs but absent from the mapping is missing for every loan.
        not_applicable: Per feature name, an (n,) bool array, True where it does not apply.

    Returns:
        The scored book (see :class:`ScoredBook`).
    """
    n = len(next(iter(features.values()))) if features else 0
    d = len(card.drivers)
    points = np.empty((n, d), dtype=np.float64)
    bins = np.empty((n, d), dtype=np.int64)
    known = np.empty((n, d), dtype=np.bool_)
    na_masks = not_applicable or {}
    for j, drv in enumerate(card.drivers):
        # bin every loan at once, then overwrite the missing and not-applicable ones
        x = features.get(drv.feature)
        if x is None:
            x = np.full(n, np.nan)
        idx = np.digitize(x, np.asarray(drv.edges)).astype(np.int64)
        pts = np.asarray(drv.points)[idx]
        missing = np.isnan(x)
        na = na_masks.get(drv.feature)
        if na is not None and drv.not_applicable_points is not None:
            # not applicable wins over the NaN placeholder such a feature usually carries
            pts = np.where(na, drv.not_applicable_points, pts)
            idx = np.where(na, NOT_APPLICABLE_BIN, idx)
            missing = missing & ~na
        elif na is not None:
            missing = missing | na  # no neutral points defined: cautious
        pts = np.where(missing, drv.missing_points, pts)
        idx = np.where(missing, MISSING_BIN, idx)
        points[:, j], bins[:, j], known[:, j] = pts, idx, ~missing
    # sum, clip, map to odds and bands
    score = np.clip(card.base_points + points.sum(axis=1), card.min_score, card.max_score)
    mins_asc = np.asarray([b.min_score for b in card.bands if b.min_score is not None][::-1])
    band = (len(mins_asc) - np.searchsorted(mins_asc, score, side="right")).astype(np.int64)
    weights = np.asarray([drv.weight for drv in card.drivers])
    confidence = (known * weights).sum(axis=1) / weights.sum()
    shortfall = np.asarray([drv.best_points for drv in card.drivers])[None, :] - points
    # reasons: the largest shortfalls, ties in driver order (stable sort)
    k = min(card.top_drivers, d)
    order = np.argsort(-shortfall, axis=1, kind="stable")[:, :k]
    worst = np.take_along_axis(shortfall, order, axis=1)
    top = np.where((worst > 0) & (worst >= card.min_shortfall), order, -1).astype(np.int64)
    return ScoredBook(score, _pd(card, score), band, confidence, points, bins, shortfall, top)


def feature_columns(inputs: Sequence[RiskInputs]) -> tuple[dict[str, FloatArray], dict[str, BoolArray]]:
    """Columns of features (NaN for missing) and not-applicable masks for many loans' inputs."""
    rows = [i.features() for i in inputs]
    names = sorted({k for r in rows for k in r})
    columns = {
        name: np.asarray([math.nan if (v := r.get(name)) is None else v for r in rows], dtype=np.float64)
        for name in names
    }
    na_names = sorted({n for i in inputs for n in i.not_applicable})
    masks = {name: np.asarray([name in i.not_applicable for i in inputs], dtype=np.bool_) for name in na_names}
    return columns, masks


def feature_columns_from_json(
    docs: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, FloatArray], dict[str, BoolArray]]:
    """Feature columns straight from stored inputs (:meth:`RiskInputs.to_json` documents).

    Equivalent to ``feature_columns([RiskInputs.from_json(d) for d in docs])`` without building
    the records, for batch rescoring of a large book.
    """
    nan = math.nan
    columns = {
        name: np.asarray(
            [nan if (v := d[part].get(attr)) is None else v for d in docs],
            dtype=np.float64,
        )
        for name, (part, attr) in FEATURE_FIELDS.items()
    }
    na_names = sorted({n for d in docs for n in d.get("not_applicable", ())})
    masks = {name: np.asarray([name in d.get("not_applicable", ()) for d in docs], dtype=np.bool_) for name in na_names}
    return columns, masks


def assess(card: Scorecard, inputs: Sequence[RiskInputs]) -> list[RiskAssessment]:
    """Score loans and explain each score (per-driver contributions, top drivers, missing inputs).

    The same inputs and scorecard always give the same assessment, bit for bit.
    """
    if not inputs:
        return []
    columns, masks = feature_columns(inputs)
    book = score_columns(card, columns, masks)
    status_of = {MISSING_BIN: "missing", NOT_APPLICABLE_BIN: "not_applicable"}
    out: list[RiskAssessment] = []
    for i, item in enumerate(inputs):
        contributions = []
        for j, drv in enumerate(card.drivers):
            b = int(book.bins[i, j])
            raw = columns.get(drv.feature)
            value = None if b < 0 or raw is None else float(raw[i])
            contributions.append(
                DriverContribution(
                    drv.name,
                    drv.feature,
                    value,
                    drv.bin_label(b),
                    float(book.points[i, j]),
                    float(book.shortfall[i, j]),
                    status_of.get(b, "ok"),
                )
            )
        band = card.bands[int(book.band[i])]
        out.append(
            RiskAssessment(
                loan_id=item.loan_id,
                site_id=item.site_id,
                as_of=item.as_of,
                config_version=card.version,
                config_sha256=card.sha256,
                score=float(book.score[i]),
                pd=float(book.pd[i]),
                band=band.name,
                colour=band.colour,
                confidence=float(book.confidence[i]),
                contributions=tuple(contributions),
                top_drivers=tuple(card.drivers[int(t)].name for t in book.top[i] if t >= 0),
                missing=tuple(c.driver for c in contributions if c.status == "missing"),
            )
        )
    return out
