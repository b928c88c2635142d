"""Edges of the HTTP API that need their own server: rate limits, body limits, CORS, and the keys CLI."""

from __future__ import annotations

import httpx

from api.auth import new_token, token_digest
from api.cli import run
from jobs.settings import Settings
from store import api_repo
from tests.api.conftest import LiveServer


def _key(engine, role: str = "admin") -> str:
    t = new_token()
    api_repo.save_key(
        engine, key_id=t.key_id, name="t", role=role, sites=None, token_sha256=t.token_sha256, actor="test"
    )
    return t.token


def test_rate_limit_answers_429_with_retry_after_and_body_limit_413(engine, db_url, tmp_path):
    settings = Settings(
        data_dir=tmp_path, database_url=db_url, api_rate_per_s=0.5, api_rate_burst=3, api_max_body_bytes=2048,
        cors_origins=["https://map.example"],
    )  # fmt: skip
    token = _key(engine)
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as c,
    ):
        codes = [c.get("/v1/scores").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/v1/scores")
        assert r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["retry-after"]) >= 1
        big = c.post("/v1/feeds/payments", content=b"x" * 5000, headers={"Content-Type": "text/csv"})
        assert big.status_code == 413
        assert big.json()["status"] == 413
        pre = c.options("/v1/scores", headers={"Origin": "https://map.example", "Access-Control-Request-Method": "GET"})
        assert pre.headers["access-control-allow-origin"] == "https://map.example"


def test_keys_cli_creates_lists_and_revokes_hashed_keys(engine, db_url, capsys):
    assert (
        run(
            [
                "--database-url",
                db_url,
                "keys",
                "create",
                "--role",
                "officer",
                "--sites",
                "a,b",
                "--name",
                "ops",
                "--json",
            ]
        )
        == 0
    )
    import json

    made = json.loads(capsys.readouterr().out)
    assert made["token"].startswith(f"sw_{made['id']}_")
    assert made["sites"] == ["a", "b"]
    stored = api_repo.get_key(engine, made["id"])
    assert stored is not None
    assert stored.token_sha256 == token_digest(made["token"])  # only the digest is kept
    assert run(["--database-url", db_url, "keys", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["revoked_at"] is None
    assert run(["--database-url", db_url, "keys", "revoke", made["id"]]) == 0
    assert api_repo.get_key(engine, made["id"]).revoked_at is not None
    assert run(["--database-url", db_url, "keys", "revoke", "nope"]) == 3
    assert run(["--database-url", db_url, "keys", "create", "--role", "king"]) == 2
