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


def _store_hall_scenes(engine) -> list[SceneRecord]:
    """The demo portfolio plus four scene records of its hall site: used, cloudy, rejected, used."""
    from aoi.demo import demo_portfolio
    from store import repo

    repo.save_portfolio(engine, demo_portfolio())
    at = [datetime(2025, 9, d, 10, 20, tzinfo=UTC) for d in (2, 7, 12, 17)]
    records = [
        SceneRecord("de-rgb-hall", "local", "S2A_0902", at[0], 4.25, 0.93, True, ""),
        SceneRecord("de-rgb-hall", "local", "S2B_0907", at[1], 82.0, 0.1, False, "too cloudy: 82.0% > 60%"),
        SceneRecord(
            "de-rgb-hall", "local", "S2A_0912", at[2], None, 0.0, False,
            "rejected: unreadable in 3 refreshes in a row; last error: read error: truncated",
        ),
        SceneRecord("de-rgb-hall", "local", "S2B_0917", at[3], 0.0, 1.0, True, ""),
    ]  # fmt: skip
    repo.save_scene_records(engine, records)
    return records


def _root_cli(db_url: str, *args: str):
    from api.cli import app as root_app

    return runner.invoke(root_app, ["--database-url", db_url, "imagery", "scenes", *args], env={"COLUMNS": "200"})


def test_scenes_json_lists_every_stored_scene_with_cloud_and_reason(engine, db_url):
    _store_hall_scenes(engine)
    result = _root_cli(db_url, "de-rgb-hall", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output.strip().splitlines()[-1])
    assert (doc["count"], doc["used"], doc["skipped"]) == (4, 2, 2)
    items = doc["items"]
    assert [i["scene_id"] for i in items] == ["S2A_0902", "S2B_0907", "S2A_0912", "S2B_0917"]
    assert items[0]["acquired_at"] == "2025-09-02T10:20:00+00:00"
    assert items[0]["cloud_fraction"] == 0.0425
    assert [i["used"] for i in items] == [True, False, False, True]
    assert items[1]["reason"] == "too cloudy: 82.0% > 60%"
    assert items[2]["reason"].startswith("rejected: unreadable")
    assert items[2]["cloud_pct"] is None


def test_scenes_since_keeps_scenes_from_that_day_on(engine, db_url):
    _store_hall_scenes(engine)
    doc = json.loads(_root_cli(db_url, "de-rgb-hall", "--since", "2025-09-07", "--json").output.splitlines()[-1])
    assert [i["scene_id"] for i in doc["items"]] == ["S2B_0907", "S2A_0912", "S2B_0917"]
    assert doc["since"] == "2025-09-07"


def test_scenes_table_shows_used_skipped_reasons_and_how_to_clear_a_rejection(engine, db_url):
    _store_hall_scenes(engine)
    result = _root_cli(db_url, "de-rgb-hall")
    assert result.exit_code == 0, result.output
    assert "S2B_0907" in result.output
    assert "too cloudy: 82.0% > 60%" in result.output
    assert "4 scene(s): 2 used, 2 skipped" in result.output
    assert "sitewatch scenes clear de-rgb-hall SCENE_ID" in result.output


def test_scenes_of_a_site_without_records_says_so(engine, db_url):
    _store_hall_scenes(engine)
    result = _root_cli(db_url, "de-rgb-hall", "--since", "2026-01-01")
    assert result.exit_code == 0
    assert "no scenes recorded for site de-rgb-hall since 2026-01-01" in result.output


def test_scenes_rejects_a_bad_since_date_naming_the_option(engine, db_url):
    result = _root_cli(db_url, "de-rgb-hall", "--since", "2025-13-01")
    assert result.exit_code == 2
    assert "--since" in result.output


def test_scenes_of_an_unknown_site_exits_3(engine, db_url, capsys):
    from api.cli import run

    assert run(["--database-url", db_url, "imagery", "scenes", "no-such-site"]) == 3
    assert "no-such-site" in capsys.readouterr().err
