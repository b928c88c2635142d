import json

import pytest
from sqlalchemy import text

from aoi.portfolio import parse_loans_csv
from api.cli import run
from tests.factories import bowtie, demo_collection, demo_loans_csv, square


def _cli(db_url, tmp_path, *args):
    return run(["--data-dir", str(tmp_path / "data"), "--database-url", db_url, *args])


@pytest.fixture
def portfolio_files(tmp_path):
    fc_path, loans_path = tmp_path / "portfolio.geojson", tmp_path / "loans.csv"
    fc_path.write_text(json.dumps(demo_collection()))
    loans_path.write_text(demo_loans_csv())
    return fc_path, loans_path


def test_import_list_show_export_round_trip(db_url, tmp_path, portfolio_files, capsys):
    fc_path, loans_path = portfolio_files
    assert _cli(db_url, tmp_path, "sites", "import", str(fc_path), "--loans", str(loans_path)) == 0
    assert "imported 6 site(s) (6 new, 0 updated) and 6 loan(s)" in capsys.readouterr().out
    assert _cli(db_url, tmp_path, "sites", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 6
    assert {"id", "planned_pct_today"} <= set(listed[0])
    assert _cli(db_url, tmp_path, "sites", "show", "de-rgb-hall") == 0
    assert "Donau Logistik GmbH" in capsys.readouterr().out
    out_geojson, out_loans = tmp_path / "export.geojson", tmp_path / "export.csv"
    assert _cli(db_url, tmp_path, "sites", "export", "--out", str(out_geojson), "--loans-out", str(out_loans)) == 0
    exported = json.loads(out_geojson.read_text())
    assert len(exported["features"]) == 6
    assert set(parse_loans_csv(out_loans.read_text())) == set(parse_loans_csv(loans_path.read_text()))


def test_bad_import_lists_every_problem_and_leaves_database_unchanged(db_url, tmp_path, portfolio_files, capsys):
    fc_path, loans_path = portfolio_files
    assert _cli(db_url, tmp_path, "sites", "import", str(fc_path), "--loans", str(loans_path)) == 0
    capsys.readouterr()
    fc = demo_collection()
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][0]
    fc["features"][0]["geometry"] = bowtie(lon, lat, 0.004)
    fc["features"][1]["properties"]["plan"]["phases"][0]["footprint"] = square(0.0, 0.0, 0.001)
    fc["features"][2]["properties"]["loan_id"] = "L-missing"
    fc["features"][3]["properties"]["name"] = "Renamed, must not be stored"
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(fc))

    from jobs.settings import Settings
    from store import connect

    engine = connect(Settings(database_url=db_url).resolved_database_url)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT id, name, updated_at FROM sites ORDER BY id")).all()

    code = _cli(db_url, tmp_path, "sites", "import", str(bad))
    err = capsys.readouterr().err
    assert code == 2
    assert "3 problem(s)" in err
    assert "feature #0" in err
    assert "Self-intersection" in err
    assert "feature #1" in err
    assert "outside the site boundary" in err
    assert "feature #2" in err
    assert "unknown loan 'L-missing'" in err
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, name, updated_at FROM sites ORDER BY id")).all() == before
    engine.dispose()


def test_unknown_site_exits_3_and_malformed_json_exits_2(db_url, tmp_path, capsys):
    assert _cli(db_url, tmp_path, "sites", "show", "nope") == 3
    assert "site 'nope' not found" in capsys.readouterr().err
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [')
    assert _cli(db_url, tmp_path, "sites", "import", str(broken)) == 2
    assert "not valid JSON" in capsys.readouterr().err
