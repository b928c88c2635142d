import json
from pathlib import Path

import jsonschema

from aoi.demo import demo_portfolio
from aoi.portfolio import parse_loans_csv, parse_portfolio

AOI = Path(__file__).resolve().parents[2] / "aoi"


def test_example_portfolio_matches_schema_and_imports():
    schema = json.loads((AOI / "schema" / "portfolio.schema.json").read_text())
    example = json.loads((AOI / "examples" / "portfolio.geojson").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(example, schema)
    loans = parse_loans_csv((AOI / "examples" / "loans.csv").read_text())
    portfolio = parse_portfolio(example, loans=loans)
    assert {s.id for s in portfolio.sites} == {s.id for s in demo_portfolio().sites}


def test_schema_rejects_a_site_without_plan():
    schema = json.loads((AOI / "schema" / "portfolio.schema.json").read_text())
    example = json.loads((AOI / "examples" / "portfolio.geojson").read_text())
    del example["features"][0]["properties"]["plan"]
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(example))
    assert errors
    assert "'plan' is a required property" in errors[0].message
