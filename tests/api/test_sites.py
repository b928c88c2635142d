from aoi.demo import demo_portfolio
from store import repo


def test_healthz_and_readyz_report_migrated_database(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["revision"] == ready.json()["head"]


def test_sites_are_served_as_geojson_with_filters(client, engine):
    repo.save_portfolio(engine, demo_portfolio())
    r = client.get("/v1/sites")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection"
    assert len(fc["features"]) == 6
    assert len(fc["bbox"]) == 4
    south = client.get("/v1/sites", params={"bbox": "-180,-90,180,0"}).json()
    assert {f["id"] for f in south["features"]} == {"ke-nbo-housing", "br-cps-warehouse", "au-bne-solar"}
    assert [f["id"] for f in client.get("/v1/sites", params={"region": "DE-BY"}).json()["features"]] == ["de-rgb-hall"]
    assert len(client.get("/v1/sites", params={"q": "solar"}).json()["features"]) == 2


def test_one_site_has_its_plan(client, engine):
    repo.save_portfolio(engine, demo_portfolio())
    f = client.get("/v1/sites/in-pnq-factory").json()
    assert f["properties"]["plan"]["start"] == "2025-08-01"
    assert [p["name"] for p in f["properties"]["plan"]["phases"]] == ["earthworks", "hall A", "hall B", "hall C"]


def test_errors_are_problem_json(client):
    missing = client.get("/v1/sites/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "site 'nope' not found"
    bad = client.get("/v1/sites", params={"bbox": "1,2,3"})
    assert bad.status_code == 422
    assert "bbox" in bad.json()["detail"]
