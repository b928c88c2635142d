import json

import pytest

from api.cli import run
from tests.api.conftest import LiveServer
from tests.iot.conftest import reading


@pytest.fixture
def http(db_url, demo_engine, tmp_path):
    """A live server; the client posts with an ingest key (as gateways do) and reads with an admin key."""
    import httpx

    from api.auth import new_token
    from jobs.settings import Settings
    from store import api_repo

    tokens = {}
    for role in ("ingest", "admin"):
        token = tokens[role] = new_token()
        api_repo.save_key(demo_engine, key_id=token.key_id, name=role, role=role, sites=None,
                          token_sha256=token.token_sha256, actor="test")  # fmt: skip

    def as_role(request: httpx.Request) -> None:
        role = "admin" if request.method == "GET" else "ingest"  # gateways post, officers read
        request.headers.setdefault("Authorization", f"Bearer {tokens[role].token}")

    settings = Settings(data_dir=tmp_path / "data", database_url=db_url)
    hooks = {"request": [as_role]}
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=20, event_hooks=hooks) as client:
        yield client


def test_readings_without_a_key_are_refused(http):
    res = http.post("/v1/iot/readings", json=[reading()], headers={"Authorization": ""})
    assert res.status_code == 401
    assert res.headers["content-type"] == "application/problem+json"


def test_post_answers_per_item_and_rejected_lists_the_reasons(http):
    body = [reading(), reading(), reading(sensor_id="x", unit="kg")]
    res = http.post("/v1/iot/readings", json=body)
    assert res.status_code == 200
    doc = res.json()
    assert (doc["accepted"], doc["duplicate"], doc["rejected"]) == (1, 1, 1)
    assert "unit 'kg'" in doc["items"][2]["reason"]
    again = http.post("/v1/iot/readings", json=body[:1]).json()
    assert again["items"][0]["status"] == "duplicate"
    dead = http.get("/v1/iot/rejected").json()["items"]
    assert len(dead) == 1
    assert dead[0]["sensor_id"] == "x"
    assert dead[0]["source"] == "http"


def test_oversized_batch_is_413_and_malformed_body_is_422_and_kept(http):
    big = [reading(sensor_id=f"s{i}") for i in range(5001)]
    assert http.post("/v1/iot/readings", json=big).status_code == 413
    bad = http.post("/v1/iot/readings", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 422
    (letter,) = http.get("/v1/iot/rejected").json()["items"]
    assert letter["raw"] == "{not json"


def test_cli_imports_csv_and_lists_rejected_as_json(db_url, demo_engine, tmp_path, capsys):
    csv_path = tmp_path / "r.csv"
    csv_path.write_text(
        "site_id,sensor_id,kind,observed_at,value,unit\n"
        "de-rgb-hall,m,power_kwh,2026-10-01T00:00:00Z,3,kWh\n"
        "de-rgb-hall,m,power_kwh,2026-10-01T01:00:00Z,-3,kWh\n"
    )
    args = ["--data-dir", str(tmp_path / "d"), "--database-url", db_url, "iot"]
    assert run([*args, "import", str(csv_path)]) == 0
    assert "1 accepted, 0 duplicate, 1 rejected" in capsys.readouterr().out
    assert run([*args, "rejected", "--json"]) == 0
    (letter,) = json.loads(capsys.readouterr().out)
    assert "outside the physical range" in letter["reason"]
    assert letter["origin"] == "r.csv:3"
    assert run([*args, "import", str(tmp_path / "missing.csv")]) == 5
