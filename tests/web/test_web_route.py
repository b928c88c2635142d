"""The page and its static files are served without a key, offline, under a strict CSP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes.web import STATIC_DIR
from jobs.settings import Settings


@pytest.fixture
def http(tmp_path: Path) -> TestClient:
    return TestClient(create_app(Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path}/s.db")))


def test_index_is_public_with_a_same_origin_csp(http: TestClient) -> None:
    r = http.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self';" in csp


def test_every_asset_the_page_names_is_served_from_this_origin(http: TestClient) -> None:
    html = http.get("/").text
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert refs
    for ref in refs:
        assert ref.startswith("/static/"), ref  # no CDN
        assert http.get(ref).status_code == 200, ref
    for module in (STATIC_DIR / "js").glob("*.js"):
        for imported in re.findall(r'from "\./([^"]+)"', module.read_text()):
            assert (STATIC_DIR / "js" / imported).exists(), (module.name, imported)
        assert "http://" not in module.read_text().replace("http://www.w3.org/2000/svg", "")


def test_vendored_leaflet_is_pinned_with_its_licence() -> None:
    vendor = STATIC_DIR / "vendor" / "leaflet"
    assert "Leaflet 1.9.4" in (vendor / "README.md").read_text()
    assert "1.9.4" in (vendor / "leaflet.js").read_text()[:300]
    assert (vendor / "LICENSE").exists()
