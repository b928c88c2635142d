import json
from datetime import UTC, date, datetime
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from aoi.portfolio import portfolio_to_feature_collection
from aoi.records import SceneRecord
from api.cli.imagery import app, scene_table
from imagery.simulate import acquisition_dates
from tests.imagery.conftest import small_site

runner = CliRunner()


def test_simulate_writes_archive_for_sites_of_a_geojson(tmp_path: Path):
    geojson = tmp_path / "sites.geojson"
    geojson.write_text(json.dumps(portfolio_to_feature_collection([small_site("s-1")])))
    out = tmp_path / "arch"
    args = ["simulate", "--out", str(out), "--site-geojson", str(geojson), "--seed", "3"]
    result = runner.invoke(app, [*args, "--start", "2025-05-01", "--end", "2025-05-12"])
    assert result.exit_code == 0, result.output
    assert (out / "catalog.json").is_file()
    n = len(acquisition_dates("s-1", date(2025, 5, 1), date(2025, 5, 12)))
    assert n >= 2
    assert len(list((out / "s-1").glob("*/*.json"))) == n
    assert (out / "truth" / "s-1" / "progress.csv").read_text().count("\n") == n + 1
    assert "s-1" in result.output


def test_simulate_rejects_invalid_geojson_with_exit_code_2(tmp_path: Path):
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}}]}))
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "o"), "--site-geojson", str(bad)])
    assert result.exit_code == 2
    assert not (tmp_path / "o" / "catalog.json").exists()


def test_simulate_rejects_reversed_dates(tmp_path: Path):
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--start", "2025-02-01", "--end", "2025-01-01"])
    assert result.exit_code == 2


def test_scene_table_shows_skip_reasons():
    rec = SceneRecord("s", "local", "S2A_X", datetime(2025, 1, 2, 10, tzinfo=UTC), 80.0, 0.1, False, "too cloudy: 80%")
    console = Console(record=True, width=200)
    console.print(scene_table([rec]))
    text = console.export_text()
    assert "S2A_X" in text
    assert "too cloudy: 80%" in text
    assert "80.0" in text
