"""Imagery sources behind one interface: search scenes over an area, read one onto a grid.

:func:`make_provider` builds one from plain values (the front doors read them from ``Settings``).
The remote providers are imported only when asked for, so importing this package stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypedDict

from imagery.providers.base import BandAsset, SceneProvider, SceneRef

__all__ = ["PROVIDER_KINDS", "BandAsset", "SceneProvider", "SceneRef", "make_provider"]

ProviderKind = Literal["local", "stac", "sentinelhub"]

#: The provider kinds :func:`make_provider` knows (``SITEWATCH_IMAGERY_PROVIDER``).
PROVIDER_KINDS: tuple[str, ...] = ("local", "stac", "sentinelhub")


class _NetworkOptions(TypedDict, total=False):
    timeout_s: float
    retries: int
    backoff_s: float


def make_provider(
    kind: ProviderKind | str,
    *,
    archive_dir: Path | str | None = None,
    stac_url: str | None = None,
    stac_collection: str = "sentinel-2-l2a",
    sentinelhub_client_id: str | None = None,
    sentinelhub_client_secret: str | None = None,
    sentinelhub_base_url: str = "https://services.sentinel-hub.com",
    sentinelhub_token_url: str | None = None,
    timeout_s: float | None = None,
    retries: int | None = None,
    backoff_s: float | None = None,
) -> SceneProvider:
    """Build the provider of a kind from plain configuration values.

    Keyword names follow the ``Settings`` fields, so a front door can pass them through.

    Args:
        kind: ``"local"``, ``"stac"`` or ``"sentinelhub"``.
        archive_dir: Local STAC archive root (``local``).
        stac_url: STAC API landing page URL (``stac``).
        stac_collection: STAC collection id (``stac``).
        sentinelhub_client_id: OAuth client id (``sentinelhub``).
        sentinelhub_client_secret: OAuth client secret (``sentinelhub``).
        sentinelhub_base_url: Sentinel Hub deployment (``sentinelhub``).
        sentinelhub_token_url: OAuth token endpoint, when not the deployment's default (``sentinelhub``).
        timeout_s: HTTP timeout per request, seconds (remote kinds; default the provider's own).
        retries: Retries after a timeout or 5xx (remote kinds; default the provider's own).
        backoff_s: First retry delay, seconds (remote kinds; default the provider's own).

    Raises:
        ValueError: an unknown kind, or a value the kind needs is missing (the message names the
            ``SITEWATCH_*`` variable that sets it).
    """
    network: _NetworkOptions = {}  # only what was given: each provider has its own defaults
    if timeout_s is not None:
        network["timeout_s"] = timeout_s
    if retries is not None:
        network["retries"] = retries
    if backoff_s is not None:
        network["backoff_s"] = backoff_s
    if kind == "local":
        from imagery.providers.local import LocalArchiveProvider

        if archive_dir is None:
            raise ValueError("the local provider needs archive_dir (SITEWATCH_ARCHIVE_DIR or SITEWATCH_DATA_DIR)")
        return LocalArchiveProvider(archive_dir)
    if kind == "stac":
        from imagery.providers.stac import StacApiProvider

        if not stac_url:
            raise ValueError("the stac provider needs stac_url (SITEWATCH_STAC_URL)")
        return StacApiProvider(stac_url, stac_collection, **network)
    if kind == "sentinelhub":
        from imagery.providers.sentinelhub import SentinelHubProvider

        if not (sentinelhub_client_id and sentinelhub_client_secret):
            raise ValueError(
                "the sentinelhub provider needs sentinelhub_client_id and sentinelhub_client_secret "
                "(SITEWATCH_SENTINELHUB_CLIENT_ID, SITEWATCH_SENTINELHUB_CLIENT_SECRET)"
            )
        return SentinelHubProvider(
            sentinelhub_client_id,
            sentinelhub_client_secret,
            sentinelhub_base_url,
            token_url=sentinelhub_token_url,
            **network,
        )
    raise ValueError(f"unknown imagery provider {kind!r}; expected one of {', '.join(PROVIDER_KINDS)}")
