from pathlib import Path

import pytest

from imagery.providers import SceneProvider, make_provider
from imagery.providers.local import LocalArchiveProvider
from imagery.providers.sentinelhub import SentinelHubProvider
from imagery.providers.stac import StacApiProvider


def test_make_provider_builds_each_kind_from_plain_values(tmp_path: Path):
    local = make_provider("local", archive_dir=tmp_path)
    stac = make_provider("stac", stac_url="https://earth-search.example/v1", stac_collection="s2", retries=5)
    hub = make_provider(
        "sentinelhub",
        sentinelhub_client_id="id",
        sentinelhub_client_secret="secret",
        sentinelhub_base_url="https://sh.dataspace.copernicus.eu",
        timeout_s=7.0,
    )
    assert isinstance(local, LocalArchiveProvider)
    assert local.catalog_path == tmp_path / "catalog.json"
    assert isinstance(stac, StacApiProvider)
    assert (stac.collection, stac.retries, stac.timeout_s) == ("s2", 5, 30.0)
    assert isinstance(hub, SentinelHubProvider)
    assert hub.config.download_timeout_seconds == 7.0
    assert hub.token_url == "https://sh.dataspace.copernicus.eu/auth/realms/main/protocol/openid-connect/token"
    assert all(isinstance(p, SceneProvider) for p in (local, stac, hub))
    assert [p.name for p in (local, stac, hub)] == ["local", "stac", "sentinelhub"]


@pytest.mark.parametrize(
    ("kind", "values", "names"),
    [
        ("local", {}, "SITEWATCH_ARCHIVE_DIR"),
        ("stac", {}, "SITEWATCH_STAC_URL"),
        ("sentinelhub", {"sentinelhub_client_id": "id"}, "SITEWATCH_SENTINELHUB_CLIENT_SECRET"),
        ("planet", {}, "unknown imagery provider 'planet'"),
    ],
)
def test_make_provider_names_the_missing_setting(kind: str, values: dict[str, str], names: str):
    with pytest.raises(ValueError, match=names):
        make_provider(kind, **values)


def test_stac_provider_refuses_impossible_settings():
    with pytest.raises(ValueError, match=r"not an http\(s\) URL.*retries must be >= 0"):
        StacApiProvider("ftp://x", retries=-1)
