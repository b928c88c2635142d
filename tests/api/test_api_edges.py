"""Edges of the HTTP API that need their own server: rate limits, body limits, CORS, and the keys CLI."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx

from aoi.demo import DEMO_AS_OF, demo_portfolio
from api.auth import KEY_CACHE_TTL_S, KeyCache, new_token, token_digest
from api.cli import run
from api.routes.scores import SCORES_VERSION_TTL_S, ScoresVersion
from jobs.risk import score_portfolio
from jobs.settings import Settings
from risk.demo import synthetic_progress
from store import api_repo, repo, risk_repo
from store.api_repo import ApiKeyRecord
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


def test_revoked_key_is_refused_within_the_key_cache_ttl(engine, db_url, tmp_path):
    token = _key(engine)
    key_id = token.split("_")[1]
    with (
        LiveServer(Settings(data_dir=tmp_path, database_url=db_url)) as live,
        httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as c,
    ):
        cache: KeyCache = live.server.config.app.state.keys
        assert cache.ttl_s == KEY_CACHE_TTL_S
        cache.ttl_s = 1.0  # the documented bound is KEY_CACHE_TTL_S; a shorter one keeps the test quick
        assert c.get("/v1/scores").status_code == 200
        assert cache.get(key_id) is not None  # the key is now served from the cache
        assert run(["--database-url", db_url, "keys", "revoke", key_id]) == 0  # another engine, as the CLI is
        revoked_at = time.monotonic()
        while (r := c.get("/v1/scores")).status_code == 200:
            assert time.monotonic() - revoked_at < cache.ttl_s + 1.0, "revoked key still accepted after the TTL"
            time.sleep(0.05)
        assert r.status_code == 401
        assert "revoked" in r.json()["detail"]
        assert c.get("/v1/scores").status_code == 401


def test_key_cache_trusts_an_entry_for_ttl_seconds_only():
    cache = KeyCache(ttl_s=5.0, size=2)
    records = [
        ApiKeyRecord(f"{k:016x}", "n", "admin", None, "0" * 64, datetime(2026, 1, 1, tzinfo=UTC), "t") for k in range(3)
    ]
    cache.put(records[0], now=100.0)
    assert cache.get(records[0].id, now=104.9) == records[0]
    assert cache.get(records[0].id, now=105.0) is None  # expired: read again from the database
    assert cache.get(records[0].id, now=100.0) is None  # and dropped, not served again
    for k, rec in enumerate(records):
        cache.put(rec, now=200.0 + k)
    assert cache.get(records[0].id, now=203.0) is None  # over capacity: the oldest went first
    assert [cache.get(r.id, now=203.0) for r in records[1:]] == records[1:]
    off = KeyCache(ttl_s=0)
    off.put(records[0], now=1.0)
    assert off.get(records[0].id, now=1.0) is None


def test_a_new_scoring_run_shows_in_score_pages_within_the_fingerprint_ttl(engine, db_url, tmp_path):
    portfolio = demo_portfolio()
    repo.save_portfolio(engine, portfolio)
    progress = {s.id: p for s in portfolio.sites if (p := synthetic_progress(s)) is not None}
    first = datetime(2026, 11, 1, 6, tzinfo=UTC)
    score_portfolio(engine, as_of=DEMO_AS_OF, progress=progress, scored_at=first)
    token = _key(engine)
    with (
        LiveServer(Settings(data_dir=tmp_path, database_url=db_url)) as live,
        httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as c,
    ):
        version: ScoresVersion = live.server.config.app.state.scores_version
        assert version.ttl_s == SCORES_VERSION_TTL_S
        page = c.get("/v1/scores")
        loan = page.json()["items"][0]["loan_id"]
        assert c.get("/v1/scores", headers={"If-None-Match": page.headers["etag"]}).status_code == 304
        latest = {s.data.loan_id: s.data for s in risk_repo.latest_scores(engine)}
        rescored_at = first + timedelta(hours=1)
        risk_repo.save_scores(engine, [latest[loan]], scored_at=rescored_at)  # as a scoring job would
        stored_at = time.monotonic()
        while (r := c.get("/v1/scores", headers={"If-None-Match": page.headers["etag"]})).status_code == 304:
            assert time.monotonic() - stored_at < version.ttl_s + 1.0, "new scores not served after the TTL"
            time.sleep(0.05)
        assert r.status_code == 200
        assert r.headers["etag"] != page.headers["etag"]
        assert r.json()["items"][0]["scored_at"] == rescored_at.isoformat()
