"""Read, validate and write portfolios: a GeoJSON FeatureCollection of sites plus a loans table.

Pure functions over parsed JSON and CSV text: the callers (CLI, API) do the file I/O.
Validation collects every problem before it fails, so an officer can fix the whole file
in one pass; a portfolio with any problem is rejected as a whole.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shapely import STRtree
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity, make_valid

from aoi.errors import PortfolioInvalidError, Problem
from aoi.model import LOAN_STATUSES, Footprint, Loan, Milestone, Phase, Plan, Portfolio, ScheduledAmount, Site
from geo import WGS84, geodesic_area_m2, reproject_geometry

logger = logging.getLogger(__name__)

#: `crs` member values that mean WGS84 lon/lat (the only CRS RFC 7946 allows).
_WGS84_NAMES = {
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "urn:ogc:def:crs:OGC::CRS84",
    "EPSG:4326",
    "urn:ogc:def:crs:EPSG::4326",
}

#: Properties the format defines; everything else is kept in ``Site.properties``.
_CORE_PROPERTIES = ("id", "name", "loan_id", "region", "plan")

LOAN_COLUMNS = (
    "loan_id",
    "borrower",
    "amount",
    "currency",
    "outstanding",
    "status",
    "disbursements",
    "repayments",
)


@dataclass(frozen=True, slots=True)
class ValidationRules:
    """Limits an import is checked against.

    Attributes:
        min_area_m2: Smallest plausible site (below: a digitising slip).
        max_area_m2: Largest plausible site (above: wrong units or CRS).
        weight_tolerance: How far phase weights may sum from 1.
        footprint_tolerance: Share of a footprint allowed outside its site (edge digitising).
    """

    min_area_m2: float = 100.0
    max_area_m2: float = 2.5e9
    weight_tolerance: float = 1e-3
    footprint_tolerance: float = 0.01


@dataclass(slots=True)
class ImportReport:
    """What an import did besides failing: repairs applied, for the officer to review."""

    repairs: list[Problem] = field(default_factory=list)


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, index: int, fid: str | None, fld: str, reason: str) -> None:
        self.problems.append(Problem(index, fid, fld, reason))


def parse_loans_csv(text: str) -> list[Loan]:
    """Parse a loans table.

    Columns: ``loan_id, borrower, amount, currency`` (required) and ``outstanding,
    status, disbursements, repayments`` (optional). Schedules are ``DATE:AMOUNT`` pairs
    separated by ``;``, e.g. ``2025-01-15:400000;2025-06-01:600000``.

    Raises:
        PortfolioInvalidError: listing every bad row and field.
    """
    issues = _Collector()
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in LOAN_COLUMNS[:4] if c not in (reader.fieldnames or [])]
    if missing:
        raise PortfolioInvalidError([Problem(-1, None, "loans.csv", f"missing column(s): {', '.join(missing)}")])
    loans: list[Loan] = []
    seen: set[str] = set()
    for i, row in enumerate(reader):
        loan = _parse_loan_row(i, row, issues)
        if loan is None:
            continue
        if loan.id in seen:
            issues.add(i, loan.id, "loans.csv:loan_id", "duplicate loan id")
        seen.add(loan.id)
        loans.append(loan)
    if issues.problems:
        raise PortfolioInvalidError(issues.problems)
    return loans


def _parse_loan_row(i: int, row: Mapping[str, str | None], issues: _Collector) -> Loan | None:
    lid = (row.get("loan_id") or "").strip()
    before = len(issues.problems)
    if not lid:
        issues.add(i, None, "loans.csv:loan_id", "is empty")
    borrower = (row.get("borrower") or "").strip()
    if not borrower:
        issues.add(i, lid, "loans.csv:borrower", "is empty")
    amount = _number(row.get("amount"), i, lid, "loans.csv:amount", issues, positive=True)
    currency = (row.get("currency") or "").strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        issues.add(i, lid, "loans.csv:currency", f"{currency!r} is not an ISO 4217 code")
    outstanding = _number(row.get("outstanding") or "0", i, lid, "loans.csv:outstanding", issues)
    status = (row.get("status") or "active").strip()
    if status not in LOAN_STATUSES:
        issues.add(i, lid, "loans.csv:status", f"{status!r} is not one of {', '.join(LOAN_STATUSES)}")
    disb = _schedule(row.get("disbursements"), i, lid, "loans.csv:disbursements", issues)
    rep = _schedule(row.get("repayments"), i, lid, "loans.csv:repayments", issues)
    if len(issues.problems) > before or amount is None or outstanding is None:
        return None
    return Loan(lid, borrower, amount, currency, tuple(disb), tuple(rep), outstanding, status)


def _number(
    raw: str | None, i: int, fid: str | None, fld: str, issues: _Collector, *, positive: bool = False
) -> float | None:
    try:
        value = float((raw or "").strip())
    except ValueError:
        issues.add(i, fid, fld, f"{raw!r} is not a number")
        return None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        issues.add(i, fid, fld, f"{raw!r} must be a finite {'positive' if positive else 'non-negative'} number")
        return None
    return value


def _schedule(raw: str | None, i: int, fid: str | None, fld: str, issues: _Collector) -> list[ScheduledAmount]:
    out: list[ScheduledAmount] = []
    for k, part in enumerate(p for p in (raw or "").split(";") if p.strip()):
        day_s, sep, amount_s = part.strip().partition(":")
        day = _iso_date(day_s, i, fid, f"{fld}[{k}]", issues)
        amount = _number(amount_s if sep else "", i, fid, f"{fld}[{k}]", issues)
        if day is not None and amount is not None:
            out.append(ScheduledAmount(day, amount))
    return sorted(out, key=lambda s: s.on)


def _iso_date(raw: Any, i: int, fid: str | None, fld: str, issues: _Collector) -> date | None:
    if not isinstance(raw, str):
        issues.add(i, fid, fld, "missing or not an ISO date string")
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        issues.add(i, fid, fld, f"{raw!r} is not an ISO date (YYYY-MM-DD)")
        return None


def parse_portfolio(
    collection: Any,
    *,
    loans: Sequence[Loan] = (),
    known_loan_ids: Iterable[str] = (),
    repair: bool = False,
    source_crs: str | None = None,
    rules: ValidationRules | None = None,
    report: ImportReport | None = None,
) -> Portfolio:
    """Validate a parsed GeoJSON FeatureCollection and build the portfolio.

    Args:
        collection: The parsed JSON document.
        loans: Loans imported together with the sites.
        known_loan_ids: Loans that already exist (in the database).
        repair: Apply ``make_valid`` to invalid geometries; each repair is reported.
        source_crs: The CRS the coordinates are in, when not WGS84 (overrides a ``crs`` member).
        rules: Validation limits.
        report: Filled with the repairs applied.

    Raises:
        PortfolioInvalidError: listing every problem, with feature, field and reason.
    """
    rules = rules or ValidationRules()
    report = report if report is not None else ImportReport()
    issues = _Collector()
    if not isinstance(collection, Mapping) or collection.get("type") != "FeatureCollection":
        raise PortfolioInvalidError([Problem(-1, None, "type", "the document is not a GeoJSON FeatureCollection")])
    features = collection.get("features")
    if not isinstance(features, list):
        raise PortfolioInvalidError([Problem(-1, None, "features", "must be a list")])

    crs_member = _crs_name(collection.get("crs"))
    if source_crs is None and crs_member is not None and crs_member not in _WGS84_NAMES:
        issues.add(-1, None, "crs", f"{crs_member!r} is not WGS84 (RFC 7946); pass --crs to convert from it")
    src = source_crs

    loan_ids = {ln.id for ln in loans} | set(known_loan_ids)
    sites: list[Site] = []
    ids: dict[str, int] = {}
    for i, feature in enumerate(features):
        site = _parse_feature(i, feature, issues, rules, report, repair=repair, src=src, loan_ids=loan_ids)
        if site is None:
            continue
        if site.id in ids:
            issues.add(i, site.id, "properties.id", f"duplicate id (also feature #{ids[site.id]})")
        ids.setdefault(site.id, i)
        sites.append(site)

    _check_overlaps(sites, ids, issues)
    if issues.problems:
        raise PortfolioInvalidError(issues.problems)
    return Portfolio(tuple(sites), tuple(loans))


def _crs_name(member: Any) -> str | None:
    if member is None:
        return None
    if isinstance(member, Mapping):
        props = member.get("properties")
        if isinstance(props, Mapping) and isinstance(props.get("name"), str):
            return str(props["name"])
    return str(member)


def _parse_feature(
    i: int,
    feature: Any,
    issues: _Collector,
    rules: ValidationRules,
    report: ImportReport,
    *,
    repair: bool,
    src: str | None,
    loan_ids: set[str],
) -> Site | None:
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        issues.add(i, None, "type", "is not a GeoJSON Feature")
        return None
    props = feature.get("properties")
    if not isinstance(props, Mapping):
        issues.add(i, None, "properties", "missing or not an object")
        return None
    fid = props.get("id", feature.get("id"))
    fid = str(fid) if fid is not None and str(fid).strip() else None
    before = len(issues.problems)
    if fid is None:
        issues.add(i, None, "properties.id", "is missing")
    texts = {}
    for key in ("name", "loan_id", "region"):
        value = props.get(key)
        if not isinstance(value, str) or not value.strip():
            issues.add(i, fid, f"properties.{key}", "is missing or empty")
        texts[key] = str(value or "").strip()
    if texts["loan_id"] and texts["loan_id"] not in loan_ids:
        issues.add(
            i, fid, "properties.loan_id", f"unknown loan {texts['loan_id']!r} (not in the loans file or database)"
        )

    boundary = _geometry(i, fid, "geometry", feature.get("geometry"), issues, report, repair=repair, src=src)
    if boundary is not None:
        area = geodesic_area_m2(boundary)
        if not rules.min_area_m2 <= area <= rules.max_area_m2:
            issues.add(
                i,
                fid,
                "geometry",
                f"area {area:,.0f} m2 is outside the allowed {rules.min_area_m2:,.0f}-{rules.max_area_m2:,.0f} m2",
            )
    plan = _parse_plan(i, fid, props.get("plan"), boundary, issues, rules, report, repair=repair, src=src)
    if len(issues.problems) > before or boundary is None or plan is None or fid is None:
        return None
    extra = {k: v for k, v in props.items() if k not in _CORE_PROPERTIES}
    return Site(fid, texts["name"], texts["loan_id"], texts["region"], boundary, plan, extra)


def _geometry(
    i: int,
    fid: str | None,
    fld: str,
    raw: Any,
    issues: _Collector,
    report: ImportReport,
    *,
    repair: bool,
    src: str | None,
) -> Footprint | None:
    if not isinstance(raw, Mapping) or raw.get("type") not in ("Polygon", "MultiPolygon"):
        kind = raw.get("type") if isinstance(raw, Mapping) else type(raw).__name__
        issues.add(i, fid, fld, f"must be a Polygon or MultiPolygon, got {kind}")
        return None
    try:
        geom: BaseGeometry = shape(raw)
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        issues.add(i, fid, fld, f"unreadable coordinates: {exc}")
        return None
    if geom.is_empty:
        issues.add(i, fid, fld, "is empty")
        return None
    if src is not None:
        geom = reproject_geometry(geom, src, WGS84)
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        issues.add(i, fid, fld, f"coordinates {geom.bounds} are not lon/lat degrees; is the CRS right?")
        return None
    if not geom.is_valid:
        why = explain_validity(geom)
        if not repair:
            issues.add(i, fid, fld, f"invalid geometry: {why} (use --repair to fix with make_valid)")
            return None
        fixed = _polygonal(make_valid(geom))
        if fixed is None or fixed.is_empty:
            issues.add(i, fid, fld, f"invalid geometry that cannot be repaired: {why}")
            return None
        change = abs(fixed.area - geom.buffer(0).area) / max(fixed.area, 1e-18)
        report.repairs.append(
            Problem(
                i,
                fid,
                fld,
                f"repaired ({why}); now {fixed.geom_type} with {_parts(fixed)} part(s), area change {change:.1%}",
            )
        )
        geom = fixed
    return geom if isinstance(geom, Polygon | MultiPolygon) else None


def _polygonal(geom: BaseGeometry) -> Footprint | None:
    if isinstance(geom, Polygon | MultiPolygon):
        return geom
    polys: list[Polygon] = []
    for part in getattr(geom, "geoms", []):
        if isinstance(part, Polygon):
            polys.append(part)
        elif isinstance(part, MultiPolygon):
            polys.extend(part.geoms)
    return MultiPolygon(polys) if polys else None


def _parts(geom: Footprint) -> int:
    return len(geom.geoms) if isinstance(geom, MultiPolygon) else 1


def _parse_plan(
    i: int,
    fid: str | None,
    raw: Any,
    boundary: Footprint | None,
    issues: _Collector,
    rules: ValidationRules,
    report: ImportReport,
    *,
    repair: bool,
    src: str | None,
) -> Plan | None:
    if not isinstance(raw, Mapping):
        issues.add(i, fid, "properties.plan", "missing or not an object")
        return None
    raw_phases = raw.get("phases")
    if not isinstance(raw_phases, list) or not raw_phases:
        issues.add(i, fid, "properties.plan.phases", "must be a non-empty list")
        return None
    before = len(issues.problems)
    phases: list[Phase] = []
    for k, rp in enumerate(raw_phases):
        at = f"properties.plan.phases[{k}]"
        if not isinstance(rp, Mapping):
            issues.add(i, fid, at, "is not an object")
            continue
        name = rp.get("name")
        if not isinstance(name, str) or not name.strip():
            issues.add(i, fid, f"{at}.name", "is missing or empty")
        weight = rp.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1:
            issues.add(i, fid, f"{at}.weight", f"{weight!r} must be a number in (0, 1]")
            weight = None
        start = _iso_date(rp.get("start"), i, fid, f"{at}.start", issues)
        end = _iso_date(rp.get("end"), i, fid, f"{at}.end", issues)
        if start and end and end < start:
            issues.add(i, fid, f"{at}.end", f"planned end {end} is before start {start}")
        fp = _geometry(i, fid, f"{at}.footprint", rp.get("footprint"), issues, report, repair=repair, src=src)
        if fp is not None and boundary is not None:
            outside = fp.difference(boundary).area / max(fp.area, 1e-18)
            if outside > rules.footprint_tolerance:
                issues.add(i, fid, f"{at}.footprint", f"{outside:.0%} of the footprint lies outside the site boundary")
        if isinstance(name, str) and weight is not None and start and end and fp is not None:
            phases.append(Phase(name.strip(), float(weight), start, end, fp))
    if len(phases) == len(raw_phases):
        total = sum(p.weight for p in phases)
        if abs(total - 1.0) > rules.weight_tolerance:
            issues.add(i, fid, "properties.plan.phases[*].weight", f"weights sum to {total:g}, not 1")
    milestones = _parse_milestones(i, fid, raw.get("milestones"), issues)
    if len(issues.problems) > before:
        return None
    return Plan(tuple(phases), tuple(milestones))


def _parse_milestones(i: int, fid: str | None, raw: Any, issues: _Collector) -> list[Milestone]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        issues.add(i, fid, "properties.plan.milestones", "must be a list")
        return []
    out: list[Milestone] = []
    for k, rm in enumerate(raw):
        at = f"properties.plan.milestones[{k}]"
        on = _iso_date(rm.get("date") if isinstance(rm, Mapping) else None, i, fid, f"{at}.date", issues)
        pct = rm.get("percent") if isinstance(rm, Mapping) else None
        if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 <= pct <= 100:
            issues.add(i, fid, f"{at}.percent", f"{pct!r} must be a number in [0, 100]")
            continue
        if on is not None:
            if out and (on <= out[-1].on or pct < out[-1].percent):
                issues.add(i, fid, at, "milestones must be in date order with non-decreasing percent")
            out.append(Milestone(on, float(pct)))
    return out


def _check_overlaps(sites: list[Site], ids: dict[str, int], issues: _Collector) -> None:
    if len(sites) < 2:
        return
    tree = STRtree([s.boundary_wgs84 for s in sites])
    for a_idx, b_idx in zip(*tree.query([s.boundary_wgs84 for s in sites], predicate="intersects"), strict=True):
        if a_idx >= b_idx:
            continue
        a, b = sites[a_idx], sites[b_idx]
        if a.loan_id == b.loan_id:
            continue
        shared = a.boundary_wgs84.intersection(b.boundary_wgs84)
        if shared.area > 0:
            issues.add(
                ids[a.id],
                a.id,
                "geometry",
                f"overlaps site {b.id!r} of a different loan ({b.loan_id}) by {geodesic_area_m2(shared):,.0f} m2",
            )


def site_to_feature(site: Site) -> dict[str, Any]:
    """One site as an RFC 7946 Feature (inverse of parsing)."""
    plan: dict[str, Any] = {
        "phases": [
            {
                "name": p.name,
                "weight": p.weight,
                "start": p.start.isoformat(),
                "end": p.end.isoformat(),
                "footprint": mapping(p.footprint_wgs84),
            }
            for p in site.plan.phases
        ]
    }
    if site.plan.milestones:
        plan["milestones"] = [{"date": m.on.isoformat(), "percent": m.percent} for m in site.plan.milestones]
    props: dict[str, Any] = {"id": site.id, "name": site.name, "loan_id": site.loan_id, "region": site.region}
    props.update(site.properties)
    props["plan"] = plan
    return {"type": "Feature", "id": site.id, "geometry": mapping(site.boundary_wgs84), "properties": props}


def portfolio_to_feature_collection(sites: Iterable[Site]) -> dict[str, Any]:
    """Sites as an RFC 7946 FeatureCollection with its bbox."""
    feats = [site_to_feature(s) for s in sites]
    out: dict[str, Any] = {"type": "FeatureCollection", "features": feats}
    bounds = [s.boundary_wgs84.bounds for s in sites] if feats else []
    if bounds:
        out["bbox"] = [
            min(b[0] for b in bounds),
            min(b[1] for b in bounds),
            max(b[2] for b in bounds),
            max(b[3] for b in bounds),
        ]
    return out


def _money(x: float) -> str:
    """Exact, plain decimal text for an amount (no exponent, no float noise)."""
    return str(int(x)) if float(x).is_integer() else repr(round(x, 6))


def loans_to_csv(loans: Iterable[Loan]) -> str:
    """Loans as CSV text in the import format."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LOAN_COLUMNS)
    for ln in loans:
        w.writerow(
            [
                ln.id,
                ln.borrower,
                _money(ln.amount),
                ln.currency,
                _money(ln.outstanding),
                ln.status,
                ";".join(f"{s.on.isoformat()}:{_money(s.amount)}" for s in ln.disbursements),
                ";".join(f"{s.on.isoformat()}:{_money(s.amount)}" for s in ln.repayments),
            ]
        )
    return buf.getvalue()
