from datetime import date

import pytest

from aoi import PortfolioInvalidError
from aoi.demo import demo_portfolio
from aoi.portfolio import (
    ImportReport,
    ValidationRules,
    loans_to_csv,
    parse_loans_csv,
    parse_portfolio,
    portfolio_to_feature_collection,
)
from tests.factories import bowtie, demo_collection, demo_loans_csv, square

LOANS = [ln.id for ln in demo_portfolio().loans]


def _problems(fc, **kw):
    kw.setdefault("known_loan_ids", LOANS)
    with pytest.raises(PortfolioInvalidError) as info:
        parse_portfolio(fc, **kw)
    return info.value.problems


def _fields(problems):
    return {(p.feature_id, p.field) for p in problems}


def test_demo_round_trips_through_geojson_and_csv():
    original = demo_portfolio()
    loans = parse_loans_csv(loans_to_csv(original.loans))
    back = parse_portfolio(portfolio_to_feature_collection(original.sites), loans=loans)
    assert back.sites == original.sites
    assert tuple(loans) == original.loans


def test_extra_properties_are_kept():
    fc = demo_collection()
    fc["features"][0]["properties"]["permit_no"] = "BA-2025-117"
    site = parse_portfolio(fc, known_loan_ids=LOANS).sites[0]
    assert site.properties["permit_no"] == "BA-2025-117"


def test_every_problem_is_listed_with_feature_field_and_reason():
    fc = demo_collection()
    f0, f1, f2 = fc["features"][:3]
    lon, lat = f0["geometry"]["coordinates"][0][0]
    f0["geometry"] = bowtie(lon, lat, 0.004)
    f1["properties"]["plan"]["phases"][1]["footprint"] = square(0.0, 0.0, 0.001)  # far outside the site
    f2["properties"]["loan_id"] = "L-nobody"
    problems = _problems(fc)
    fields = _fields(problems)
    assert (f0["properties"]["id"], "geometry") in fields
    assert (f1["properties"]["id"], "properties.plan.phases[1].footprint") in fields
    assert (f2["properties"]["id"], "properties.loan_id") in fields
    text = "\n".join(str(p) for p in problems)
    assert "Self-intersection" in text
    assert "outside the site boundary" in text
    assert "unknown loan 'L-nobody'" in text
    assert "feature #0" in text
    assert "feature #2" in text


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda p: p["plan"]["phases"][0].update(end="2020-01-01"), "properties.plan.phases[0].end", "before start"),
        (lambda p: p["plan"]["phases"][0].update(weight=0.5), "properties.plan.phases[*].weight", "sum to"),
        (lambda p: p["plan"]["phases"][0].update(start="1st of May"), "properties.plan.phases[0].start", "ISO date"),
        (lambda p: p["plan"]["phases"][0].update(weight="heavy"), "properties.plan.phases[0].weight", "(0, 1]"),
        (lambda p: p.pop("region"), "properties.region", "missing"),
        (lambda p: p["plan"].update(phases=[]), "properties.plan.phases", "non-empty"),
        (
            lambda p: p["plan"].update(
                milestones=[{"date": "2026-01-01", "percent": 60}, {"date": "2025-01-01", "percent": 70}]
            ),
            "properties.plan.milestones[1]",
            "date order",
        ),
    ],
)
def test_plan_and_property_problems_name_the_field(mutate, field, reason):
    fc = demo_collection()
    mutate(fc["features"][3]["properties"])
    problems = _problems(fc)
    match = [p for p in problems if p.field == field]
    assert match, problems
    assert reason in match[0].reason
    assert match[0].index == 3


def test_duplicate_ids_are_rejected():
    fc = demo_collection()
    fc["features"][1]["properties"]["id"] = fc["features"][0]["properties"]["id"]
    problems = _problems(fc)
    assert any("duplicate id" in p.reason and p.index == 1 for p in problems)


def test_overlapping_sites_of_different_loans_are_rejected():
    fc = demo_collection()
    fc["features"][1]["geometry"] = fc["features"][0]["geometry"]
    fc["features"][1]["properties"]["plan"] = fc["features"][0]["properties"]["plan"]
    problems = _problems(fc)
    assert any("overlaps site" in p.reason for p in problems)


def test_area_outside_bounds_is_rejected():
    fc = demo_collection()
    problems = _problems(fc, rules=ValidationRules(max_area_m2=1000.0))
    assert len([p for p in problems if p.field == "geometry" and "area" in p.reason]) == 6


def test_non_wgs84_crs_member_needs_explicit_crs():
    fc = demo_collection()
    fc["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}}
    problems = _problems(fc)
    assert problems[0].field == "crs"
    assert "--crs" in problems[0].reason


def test_explicit_crs_reprojects_coordinates():
    from geo import reproject_geometry

    site = demo_portfolio().sites[1]  # zone 33 site
    fc = portfolio_to_feature_collection([site])
    from shapely.geometry import mapping, shape

    def to_utm(g):
        return mapping(reproject_geometry(shape(g), "EPSG:4326", "EPSG:32633"))

    feat = fc["features"][0]
    feat["geometry"] = to_utm(feat["geometry"])
    for ph in feat["properties"]["plan"]["phases"]:
        ph["footprint"] = to_utm(ph["footprint"])
    back = parse_portfolio(fc, known_loan_ids=LOANS, source_crs="EPSG:32633").sites[0]
    assert back.boundary_wgs84.equals_exact(site.boundary_wgs84, 1e-9)


def test_repair_fixes_bowtie_and_reports_the_change():
    fc = demo_collection()
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][0]
    fc["features"][0]["geometry"] = bowtie(lon, lat, 0.01)
    fc["features"][0]["properties"]["plan"]["phases"] = [
        {
            "name": "all",
            "weight": 1.0,
            "start": "2025-01-01",
            "end": "2025-12-31",
            "footprint": square(lon + 0.008, lat + 0.0045, 0.001),
        }
    ]
    report = ImportReport()
    portfolio = parse_portfolio(fc, known_loan_ids=LOANS, repair=True, report=report)
    assert portfolio.sites[0].boundary_wgs84.is_valid
    assert portfolio.sites[0].boundary_wgs84.geom_type == "MultiPolygon"
    assert len(report.repairs) == 1
    assert "Self-intersection" in report.repairs[0].reason


def test_not_a_feature_collection_is_one_clear_problem():
    problems = _problems({"type": "Feature"})
    assert len(problems) == 1
    assert "FeatureCollection" in problems[0].reason


def test_loans_csv_problems_name_row_and_column():
    text = demo_loans_csv().splitlines()
    header, row = text[0], text[1].split(",")
    row[2] = "lots"  # amount
    row[3] = "EURO"  # currency
    with pytest.raises(PortfolioInvalidError) as info:
        parse_loans_csv("\n".join([header, ",".join(row)]))
    fields = {p.field for p in info.value.problems}
    assert fields == {"loans.csv:amount", "loans.csv:currency"}


def test_loan_amounts_survive_csv_exactly():
    from aoi import Loan, ScheduledAmount

    loan = Loan("L1", "ACME", 1234567.89, "EUR", (ScheduledAmount(date(2025, 1, 1), 1000000.01),), (), 98765.4)
    assert parse_loans_csv(loans_to_csv([loan])) == [loan]
    assert "e+" not in loans_to_csv([loan])


def test_loans_csv_missing_columns():
    with pytest.raises(PortfolioInvalidError, match="missing column"):
        parse_loans_csv("loan_id,borrower\nL1,ACME\n")
