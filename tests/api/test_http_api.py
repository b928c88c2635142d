"""The /v1 API through real HTTP: roles, scopes, pagination, ETags, CSV, tiles and problem+json."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tests.api.conftest import SCOPED_SITES, ApiState


def _is_problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    return body


def test_public_endpoints_need_no_key_and_openapi_lists_v1(api: ApiState):
    with api.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").status_code == 200
        doc = c.get("/openapi.json").json()
        assert "/v1/scores" in doc["paths"]
        assert "/v1/sites/{site_id}/scenes/{scene_id}/tiles/{z}/{x}/{y}.png" in doc["paths"]
        assert {"HTTPBearer", "APIKeyHeader"} <= set(doc["components"]["securitySchemes"])
        assert c.get("/docs").status_code == 200
        metrics = c.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'sitewatch_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics.text
        assert "sitewatch_http_request_duration_seconds_bucket" in metrics.text


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nonsense"}, {"X-API-Key": "sw_0123456789abcdef_wrong"}],
    ids=["missing", "malformed", "unknown"],
)
def test_missing_or_invalid_key_is_401_with_www_authenticate(api: ApiState, headers):
    with api.client(**headers) as c:
        r = c.get("/v1/scores")
    body = _is_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert body["instance"] == "/v1/scores"


def test_revoked_key_is_401_and_x_api_key_header_works(api: ApiState):
    with api.client("revoked") as c:
        assert "revoked" in _is_problem(c.get("/v1/scores"), 401)["detail"]
    with api.client(**{"X-API-Key": api.tokens["risk_engine"]}) as c:
        assert c.get("/v1/scores").status_code == 200


ALLOWED = {
    # (method, path): roles allowed besides admin
    ("GET", "/v1/sites"): {"officer"},
    ("GET", "/v1/sites/de-rgb-hall"): {"officer"},
    ("GET", "/v1/scores"): {"officer", "risk_engine"},
    ("GET", "/v1/loans/L-de-rgb-hall/score"): {"officer", "risk_engine"},
    ("GET", "/v1/sites/de-rgb-hall/progress"): {"officer", "risk_engine"},
    ("GET", "/v1/progress"): {"officer", "risk_engine"},
    ("GET", "/v1/sites/de-rgb-hall/scenes"): {"officer", "risk_engine"},
    ("GET", "/v1/alerts"): {"officer"},
    ("GET", "/v1/cases"): {"officer"},
    ("GET", "/v1/iot/rejected"): {"officer"},
    ("POST", "/v1/feeds/payments"): {"ingest"},
    ("POST", "/v1/feeds/market"): set(),
    ("POST", "/v1/iot/readings"): {"ingest"},
    ("DELETE", "/v1/sites/nope"): set(),
}


@pytest.mark.parametrize("role", ["admin", "officer", "risk_engine", "ingest"])
def test_each_role_is_allowed_or_refused_with_403(api: ApiState, role):
    with api.client(role) as c:
        for (method, path), roles in ALLOWED.items():
            kwargs = {}
            if method == "POST":
                kwargs = {"content": b"[]", "headers": {"Content-Type": "application/json"}}
            r = c.request(method, path, **kwargs)
            if role == "admin" or role in roles:
                assert r.status_code != 403 and r.status_code < 500, (role, method, path, r.text)  # noqa: PT018
            else:
                assert "may not" in _is_problem(r, 403)["detail"], (role, method, path)


def test_scoped_key_sees_other_sites_exactly_like_missing_ones(api: ApiState):
    with api.client("scoped") as c:
        assert {f["id"] for f in c.get("/v1/sites").json()["features"]} == set(SCOPED_SITES)
        for path in (
            "/v1/sites/{}",
            "/v1/sites/{}/progress",
            "/v1/sites/{}/scenes",
            "/v1/sites/{}/scenes/x/tilejson.json",
        ):
            hidden = c.get(path.format("in-pnq-factory"))
            missing = c.get(path.format("no-such-site"))
            assert hidden.status_code == missing.status_code == 404

            def strip(b):
                return {
                    k: v.replace("in-pnq-factory", "X").replace("no-such-site", "X")
                    for k, v in b.items()
                    if isinstance(v, str)
                }

            assert strip(hidden.json()) == strip(missing.json())
            assert set(hidden.headers) == set(missing.headers)
        assert c.get("/v1/loans/L-in-pnq-factory/score").json()["detail"] == "loan 'L-in-pnq-factory' not found"
        assert {s["loan_id"] for s in c.get("/v1/scores").json()["items"]} == {f"L-{s}" for s in SCOPED_SITES}
        assert [p["site_id"] for p in c.get("/v1/progress").json()["items"]] == sorted(SCOPED_SITES)
        assert all(a["loan_id"] in {f"L-{s}" for s in SCOPED_SITES} for a in c.get("/v1/alerts").json()["items"])
        z, x, y = api.tile_inside
        assert c.get(f"/v1/sites/in-pnq-factory/scenes/{api.scene_id}/tiles/{z}/{x}/{y}.png").status_code == 404


def test_portfolio_progress_pages_match_each_sites_own_progress(api: ApiState):
    with api.client("officer") as c:
        items, cursor = [], None
        for _ in range(10):
            page = c.get("/v1/progress", params={"limit": 4} | ({"cursor": cursor} if cursor else {}))
            assert page.status_code == 200, page.text
            body = page.json()
            assert body["count"] == len(body["items"]) <= 4
            items += body["items"]
            cursor = body["next_cursor"]
            assert ("link" in page.headers) == (cursor is not None)
            if cursor is None:
                break
        site_ids = sorted(f["id"] for f in c.get("/v1/sites").json()["features"])
        assert [i["site_id"] for i in items] == site_ids  # every site once, in id order
        fields = ("as_of", "planned_pct", "observed_pct", "deviation_pp", "slip_days", "stalled", "stall_check")
        for item in items:
            own = c.get(f"/v1/sites/{item['site_id']}/progress").json()["summary"]
            assert {k: item[k] for k in fields} == {k: own[k] for k in fields}
        assert any(i["stalled"] for i in items) and not all(i["stalled"] for i in items)  # noqa: PT018
        first = c.get("/v1/progress")
        assert c.get("/v1/progress", headers={"If-None-Match": first.headers["etag"]}).status_code == 304
        assert _is_problem(c.get("/v1/progress", params={"cursor": "garbage!"}), 400)["detail"].startswith("cursor")


def test_score_pages_cover_every_loan_exactly_once(api: ApiState):
    seen: list[str] = []
    with api.client("risk_engine") as c:
        cursor = None
        for _ in range(10):
            params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
            page = c.get("/v1/scores", params=params)
            assert page.status_code == 200
            body = page.json()
            seen += [s["loan_id"] for s in body["items"]]
            cursor = body["next_cursor"]
            assert ("link" in page.headers) == (cursor is not None)
            if cursor is None:
                break
        assert seen == api.loan_ids
        assert _is_problem(c.get("/v1/scores", params={"cursor": "garbage!"}), 400)["detail"].startswith("cursor")
        assert _is_problem(c.get("/v1/scores", params={"limit": 5000}), 422)["errors"][0]["field"] == "query.limit"


def test_scores_have_strong_etags_and_answer_304(api: ApiState):
    with api.client("risk_engine") as c:
        first = c.get("/v1/scores")
        etag = first.headers["etag"]
        assert etag.startswith('"')
        assert not etag.startswith("W/")
        again = c.get("/v1/scores", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert c.get("/v1/scores", headers={"If-None-Match": '"other"'}).status_code == 200
        assert c.get("/v1/scores", params={"limit": 2}).headers["etag"] != etag


def test_since_returns_only_scores_changed_after_it(api: ApiState):
    with api.client("risk_engine") as c:
        between = (api.rescored_at - timedelta(hours=1)).isoformat()
        assert [s["loan_id"] for s in c.get("/v1/scores", params={"since": between}).json()["items"]] == [
            api.rescored_loan
        ]
        assert c.get("/v1/scores", params={"since": "2026-11-01T00:00:00Z"}).json()["count"] == len(api.loan_ids)
        assert c.get("/v1/scores", params={"since": api.rescored_at.isoformat()}).json()["items"] == []
        assert _is_problem(c.get("/v1/scores", params={"since": "yesterday"}), 422)


def test_loan_score_has_drivers_and_history(api: ApiState):
    with api.client("risk_engine") as c:
        body = c.get(f"/v1/loans/{api.rescored_loan}/score").json()
    assert len(body["history"]) == 2
    assert body["drivers"]
    assert {"feature", "points"} <= set(body["drivers"][0])
    assert body["top_drivers"]


def test_progress_as_json_and_csv(api: ApiState):
    with api.client("risk_engine") as c:
        j = c.get("/v1/sites/de-rgb-hall/progress").json()
        assert j["summary"]["site_id"] == "de-rgb-hall"
        assert len(j["series"]) == 4
        by_accept = c.get("/v1/sites/de-rgb-hall/progress", headers={"Accept": "text/csv"})
        by_query = c.get("/v1/sites/de-rgb-hall/progress", params={"format": "csv"})
    assert by_accept.headers["content-type"].startswith("text/csv")
    assert by_accept.text == by_query.text
    lines = by_accept.text.splitlines()
    assert lines[0] == "on,planned_pct,observed_pct,lower_pct,upper_pct"
    assert len(lines) == 5
    assert lines[-1].startswith("2026-11-01,50.0,40.0")


def test_scenes_list_cloud_fraction_and_skip_reason(api: ApiState):
    with api.client("officer") as c:
        items = c.get("/v1/sites/de-rgb-hall/scenes").json()["items"]
    skipped = [i for i in items if not i["used"]]
    assert len(items) == 3
    assert len(skipped) == 2
    assert skipped[0]["cloud_fraction"] == 0.8
    assert skipped[0]["reason"] == "too cloudy"


def test_tiles_inside_the_site_are_png_and_outside_are_404(api: ApiState):
    z, x, y = api.tile_inside
    base = f"/v1/sites/de-rgb-hall/scenes/{api.scene_id}"
    with api.client("officer") as c:
        tile = c.get(f"{base}/tiles/{z}/{x}/{y}.png")
        assert tile.status_code == 200
        assert tile.headers["content-type"] == "image/png"
        assert tile.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert "max-age" in tile.headers["cache-control"]
        assert (
            c.get(f"{base}/tiles/{z}/{x}/{y}.png", headers={"If-None-Match": tile.headers["etag"]}).status_code == 304
        )
        oz, ox, oy = api.tile_outside
        assert "outside" in _is_problem(c.get(f"{base}/tiles/{oz}/{ox}/{oy}.png"), 404)["detail"]
        assert c.get(f"{base}/tiles/3/1/1.png").status_code == 404
        assert c.get(f"/v1/sites/de-rgb-hall/scenes/nope/tiles/{z}/{x}/{y}.png").status_code == 404
        tj = c.get(f"{base}/tilejson.json").json()
    assert tj["tilejson"] == "3.0.0"
    assert tj["tiles"][0].endswith("/tiles/{z}/{x}/{y}.png")
    w, s, e, n = tj["bounds"]
    assert w < e
    assert s < n


def test_acknowledge_records_who_and_refuses_twice(api: ApiState):
    with api.client("officer") as c:
        alerts = c.get("/v1/alerts", params={"status": "open", "loan_id": "L-de-rgb-hall"}).json()["items"]
        assert alerts, "the demo book has open alerts on de-rgb-hall"
        aid = alerts[0]["id"]
        acked = c.post(f"/v1/alerts/{aid}/acknowledge", json={"note": "called the borrower"}).json()
        assert acked["status"] == "acknowledged"
        assert acked["acknowledged_by"].startswith("key:")
        assert acked["acknowledge_note"] == "called the borrower"
        _is_problem(c.post(f"/v1/alerts/{aid}/acknowledge", json={"note": "again"}), 409)
        assert c.get("/v1/alerts", params={"severity": "low", "status": "resolved"}).status_code == 200
    with api.client("scoped") as c:
        other = c.post("/v1/alerts/999999/acknowledge", json={})
        assert _is_problem(other, 404)["detail"] == "no alert 999999"


def test_payments_ingest_as_json_and_csv_records_rejections(api: ApiState):
    rows = [
        {"loan_id": "L-de-rgb-hall", "due_date": "2026-10-01", "amount_due": 1000, "paid_date": "2026-10-02", "amount_paid": 1000},  # noqa: E501
        {"loan_id": "L-nope", "due_date": "2026-10-01", "amount_due": 5},
    ]  # fmt: skip
    with api.client("ingest") as c:
        r = c.post("/v1/feeds/payments", json=rows)
        assert r.status_code == 200, r.text
        assert r.json()["created"] + r.json()["updated"] == 1
        assert len(r.json()["rejected"]) == 1
        csv_body = "loan_id,due_date,amount_due\nL-de-rgb-hall,2026-11-01,1000\n"
        r = c.post("/v1/feeds/payments", content=csv_body, headers={"Content-Type": "text/csv"})
        assert r.json()["rejected"] == []
        assert _is_problem(
            c.post("/v1/feeds/payments", content="a,b\n1,2\n", headers={"Content-Type": "text/csv"}), 422
        )["problems"]
        assert c.post("/v1/feeds/payments", content="x", headers={"Content-Type": "image/png"}).status_code == 415
        assert c.get("/v1/scores").status_code == 403
    with api.client("scoped_ingest") as c:
        body = "loan_id,due_date,amount_due\nL-in-pnq-factory,2026-11-01,1\n"
        r = c.post("/v1/feeds/payments", content=body, headers={"Content-Type": "text/csv"}).json()
        assert r["created"] + r["updated"] == 0
        assert len(r["rejected"]) == 1


def test_site_writes_validate_like_imports_and_are_admin_only(api: ApiState):
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[10, 10], [10.004, 10], [10.004, 10.004], [10, 10.004], [10, 10]]]},  # noqa: E501
        "properties": {
            "id": "tmp-site", "name": "Tmp", "loan_id": "L-de-rgb-hall", "region": "DE-BY",
            "plan": {"phases": [{"name": "all", "weight": 1.0, "start": "2026-01-01", "end": "2025-01-01",
                                 "footprint": {"type": "Polygon", "coordinates": [[[10.001, 10.001], [10.002, 10.001], [10.002, 10.002], [10.001, 10.002], [10.001, 10.001]]]}}]},  # noqa: E501
        },
    }  # fmt: skip
    with api.client("admin") as c:
        bad = _is_problem(c.post("/v1/sites", json=feature), 422)
        assert any(p["field"].startswith("plan.phases[0]") or "end" in p["field"] for p in bad["problems"])
        feature["properties"]["plan"]["phases"][0]["end"] = "2027-01-01"
        created = c.post("/v1/sites", json=feature)
        assert created.status_code == 201, created.text
        assert created.headers["location"] == "/v1/sites/tmp-site"
        assert c.post("/v1/sites", json=feature).status_code == 409
        assert c.put("/v1/sites/tmp-site", json=feature).status_code == 200
        assert c.delete("/v1/sites/tmp-site").status_code == 204
        assert c.get("/v1/sites/tmp-site").status_code == 404
    with api.client("officer") as c:
        _is_problem(c.post("/v1/sites", json=feature), 403)
    audit = [e for e in api_audit(api) if e["entity_id"] == "tmp-site"]
    assert {e["action"] for e in audit} == {"upsert", "delete"}
    assert all(e["actor"].startswith("key:") for e in audit)


def api_audit(api: ApiState) -> list[dict]:
    from store import repo

    return repo.audit_entries(api.engine)


def test_refresh_returns_202_and_the_job_records_its_outcome(api: ApiState):
    with api.client("officer") as c:
        r = c.post("/v1/sites/de-rgb-hall/refresh", json={"as_of": "2026-11-01"})
        assert r.status_code == 202
        job = r.json()
        assert r.headers["location"] == f"/v1/jobs/{job['id']}"
        for _ in range(100):
            job = c.get(f"/v1/jobs/{job['id']}").json()
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(0.1)
    # no imagery archive in this state: the refresh fails with the reason, and says so
    assert job["status"] == "failed"
    assert "catalog" in job["reason"]
    with api.client("risk_engine") as c:
        _is_problem(c.post("/v1/sites/de-rgb-hall/refresh"), 403)
    with api.client("scoped") as c:
        assert c.get(f"/v1/jobs/{job['id']}").status_code == 200
        assert c.post("/v1/sites/in-pnq-factory/refresh").status_code == 404


def test_ingest_readings_needs_the_ingest_role(api: ApiState):
    reading = {"site_id": "de-rgb-hall", "sensor_id": "gate-1", "kind": "gate_entries", "observed_at": "2026-10-30T10:00:00Z", "value": 3, "unit": "count"}  # fmt: skip  # noqa: E501
    with api.client("scoped_ingest") as c:
        out = c.post("/v1/iot/readings", json=[reading, {**reading, "site_id": "in-pnq-factory"}]).json()
    assert out["items"][1]["status"] == "rejected"
    with api.client() as c:
        metrics = c.get("/metrics").text
    assert 'sitewatch_ingest_items_total{feed="readings",status="rejected"}' in metrics


def test_inputs_that_schemathesis_turned_into_server_errors_are_client_errors(api: ApiState):
    """Each of these answered 500 before (see tests/api/test_schemathesis.py)."""
    with api.client("admin") as c:
        # ids beyond the 32-bit keys: the driver overflowed (SQLite) or the cast failed (PostgreSQL)
        too_big = c.post("/v1/alerts/2147483648/acknowledge", json={"note": "x"})
        assert _is_problem(too_big, 422)["errors"][0]["field"] == "path.alert_id"
        assert _is_problem(c.get("/v1/iot/rejected", params={"before_id": 2**63}), 422)
        # a carriage return inside a JSON key or value went out as unquoted CSV
        rows = [{"loan_id": "L-de-rgb-hall\r", "due_date": "2026-01-31", "amount_due": "1\r0", "x\ry": 1}]
        r = c.post("/v1/feeds/payments", json=rows)
        assert r.status_code == 200, r.text
        assert r.json()["rejected"]  # the row is refused with its reason, and kept
        bare_cr = "loan_id,due_date,amount_due\nL-de-rgb-hall,2026-01-31,1\r0\n"
        r = c.post("/v1/feeds/payments", content=bare_cr, headers={"Content-Type": "text/csv"})
        assert "not readable as CSV" in _is_problem(r, 422)["detail"]
        # a JSON scalar is no batch of readings: refused, and kept as a dead letter
        before = c.get("/v1/iot/rejected").json()["items"]
        r = c.post("/v1/iot/readings", content=b"12345", headers={"Content-Type": "application/json"})
        assert "expected a JSON array" in _is_problem(r, 422)["detail"]
        after = c.get("/v1/iot/rejected").json()["items"]
        assert len(after) == len(before) + 1
        assert (after[0]["raw"], after[0]["origin"]) == ("12345", "http body")
