"""A provider over a STAC API (Earth Search, any STAC API with item search), read over HTTP range requests.

Searching uses pystac-client (``POST /search``, or ``GET`` when asked or when the server answers
POST with 405; ``next`` links are followed). Items become :class:`SceneRef` through
:mod:`imagery.providers.stacitem`, which knows Earth Search's asset names (``red``, ``nir``,
``scl``...). Reading uses the shared raster reader: COG assets are opened through GDAL's
``/vsicurl/`` (a HEAD, then GET requests with ``Range`` headers for the header and the tiles that
cover the grid), so only the site's pixels cross the network.

Failures of the search (connection error, timeout, HTTP 429 or 5xx) are retried with exponential
backoff, then reported as :class:`ProviderUnavailableError` naming the URL and the last status.
Reads are retried by GDAL (``GDAL_HTTP_MAX_RETRY``, whose delay doubles at every try); a scene
that still cannot be read raises :class:`SceneUnavailableError`, which ``load_datacube`` records
against that scene only.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import pystac
import xarray as xr
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO

from geo import BBox, Grid
from imagery.errors import CatalogInvalidError, ProviderAuthError, ProviderUnavailableError
from imagery.providers.base import SceneRef
from imagery.providers.local import as_utc_bounds
from imagery.providers.reading import read_scene, read_scene_into
from imagery.providers.stacitem import merge_same_pass, scene_ref_from_item

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: HTTP statuses worth another try: rate limiting and server-side failures (RFC 9110 section 15.6).
_RETRY_STATUS_MIN = 500
_TOO_MANY_REQUESTS = 429
_AUTH_STATUSES = (401, 403)


class StacApiProvider:
    """Scenes from a STAC API collection (default Earth Search's ``sentinel-2-l2a``).

    Args:
        url: Root (landing page) URL of the STAC API, e.g. ``https://earth-search.aws.element84.com/v1``.
        collection: Collection id searched.
        timeout_s: Connect and read timeout of each HTTP request, seconds (search and GDAL reads).
        retries: Further attempts after a failed search (and GDAL retries of each read request).
        backoff_s: Wait before the first retry, seconds; doubled at each further retry.
        page_size: Items asked per search page (``limit``); pages are followed through ``next`` links.
        method: HTTP method of the search; pystac-client falls back to GET when POST is refused (405).
        headers: Extra HTTP headers sent with every API request (an API key, for example).
        merge_tiles: Merge items of one satellite pass (adjacent tiles over the site) into one
            scene, mosaicked least cloudy tile first, as Sentinel Hub does (see
            :func:`~imagery.providers.stacitem.merge_same_pass`).

    Raises:
        ValueError: a URL that is not http(s), or a negative timeout, retry count or backoff.
    """

    name = "stac"

    def __init__(
        self,
        url: str,
        collection: str = "sentinel-2-l2a",
        *,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 1.0,
        page_size: int = 100,
        method: Literal["POST", "GET"] = "POST",
        headers: Mapping[str, str] | None = None,
        merge_tiles: bool = True,
    ) -> None:
        problems = []
        if not url.startswith(("http://", "https://")):
            problems.append(f"url {url!r} is not an http(s) URL")
        if not timeout_s > 0:
            problems.append(f"timeout_s must be > 0, got {timeout_s}")
        if retries < 0:
            problems.append(f"retries must be >= 0, got {retries}")
        if backoff_s < 0:
            problems.append(f"backoff_s must be >= 0, got {backoff_s}")
        if page_size < 1:
            problems.append(f"page_size must be >= 1, got {page_size}")
        if problems:
            raise ValueError("invalid StacApiProvider settings: " + "; ".join(problems))
        self.url = url.rstrip("/")
        self.collection = collection
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.page_size = int(page_size)
        self.method = method
        self.headers = dict(headers or {})
        self.merge_tiles = merge_tiles
        #: GDAL options of every read: timeout and retries follow the provider's settings.
        self.gdal_options: dict[str, object] = {
            "GDAL_HTTP_TIMEOUT": max(1, math.ceil(self.timeout_s)),
            "GDAL_HTTP_CONNECTTIMEOUT": max(1, math.ceil(self.timeout_s)),
            "GDAL_HTTP_MAX_RETRY": self.retries,
            "GDAL_HTTP_RETRY_DELAY": self.backoff_s,
        }
        self._client: Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StacApiProvider({self.url!r}, collection={self.collection!r})"

    def search(self, bbox_wgs84: BBox, start: date | datetime, end: date | datetime) -> list[SceneRef]:
        """Items of the collection intersecting ``bbox_wgs84`` and sensed in ``[start, end]``, oldest first.

        Items that cannot be turned into scenes (no datetime, bbox or data assets) are logged and left out.

        Raises:
            ProviderUnavailableError: the API kept failing (timeouts, 5xx) or refused the search.
            ProviderAuthError: the API answered 401 or 403.
        """
        t0, t1 = as_utc_bounds(start, end)
        items = self._with_retries("search", lambda: self._search_once(bbox_wgs84, t0, t1))
        scenes: list[SceneRef] = []
        for item in items:
            try:
                scenes.append(scene_ref_from_item(item, provider=self.name, base_href=_self_href(item)))
            except CatalogInvalidError as exc:
                logger.warning("skipping bad STAC item from %s: %s", self.url, exc)
        n_items = len(scenes)
        if self.merge_tiles:
            scenes = merge_same_pass(scenes)
        scenes.sort(key=lambda s: (s.acquired_at_utc, s.scene_id))
        logger.debug(
            "%s: %d scenes (%d items) in %s between %s and %s", self.url, len(scenes), n_items, self.collection, t0, t1
        )
        return scenes

    def read(self, scene: SceneRef, grid: Grid, bands: Sequence[str]) -> xr.DataArray:
        """Read bands onto a grid over HTTP range requests (see :meth:`SceneProvider.read`).

        Raises:
            MissingBandError, SceneUnavailableError, SceneCorruptError, NoOverlapError.
        """
        return read_scene(scene, grid, bands, gdal_options=self.gdal_options)

    def read_into(
        self, scene: SceneRef, grid: Grid, bands: Sequence[str], out: Sequence[npt.NDArray[np.float32]]
    ) -> None:
        """:meth:`read` into caller-owned (y, x) float32 buffers, one per band (see BufferedSceneProvider)."""
        read_scene_into(scene, grid, bands, out, gdal_options=self.gdal_options)

    def _open(self) -> Client:
        with self._lock:
            if self._client is None:
                # Retries are ours (with backoff and a clear final error), not urllib3's.
                stac_io = StacApiIO(headers=self.headers, timeout=self.timeout_s, max_retries=None)
                # Client.open re-applies its own timeout to the StacApiIO, so it is given here too.
                self._client = Client.open(self.url, stac_io=stac_io, timeout=self.timeout_s)
            return self._client

    def _search_once(self, bbox_wgs84: BBox, t0: datetime, t1: datetime) -> list[dict[str, Any]]:
        client = self._open()
        search = client.search(
            method=self.method,
            collections=[self.collection],
            bbox=list(bbox_wgs84),
            datetime=[t0, t1],
            limit=self.page_size,
        )
        return list(search.items_as_dicts())

    def _with_retries(self, what: str, call: Callable[[], T]) -> T:
        attempts = self.retries + 1
        last = "no attempt made"
        for attempt in range(1, attempts + 1):
            try:
                return call()
            except APIError as exc:
                status: int | None = getattr(exc, "status_code", None)
                if status in _AUTH_STATUSES:
                    raise ProviderAuthError(
                        f"STAC API {self.url} refused the {what} (HTTP {status}): {_brief(exc)}"
                    ) from exc
                if status is not None and status < _RETRY_STATUS_MIN and status != _TOO_MANY_REQUESTS:
                    raise ProviderUnavailableError(
                        f"STAC API {self.url} rejected the {what} (HTTP {status}): {_brief(exc)}"
                    ) from exc
                last = f"HTTP {status}" if status is not None else f"no response ({_brief(exc)})"
            except (pystac.STACError, json.JSONDecodeError, NotImplementedError) as exc:
                # Not a STAC API (or no item search): retrying cannot help.
                raise ProviderUnavailableError(f"{self.url} is not a usable STAC API: {exc}") from exc
            if attempt < attempts:
                delay = self.backoff_s * 2 ** (attempt - 1)
                logger.warning(
                    "STAC API %s %s failed (%s); retry %d of %d in %.2f s",
                    self.url,
                    what,
                    last,
                    attempt,
                    self.retries,
                    delay,
                )
                time.sleep(delay)
        raise ProviderUnavailableError(
            f"STAC API {self.url} unavailable: {what} failed {attempts} time(s); last status: {last}"
        )


def _self_href(item: Mapping[str, Any]) -> str | None:
    """The item's own URL (to resolve relative asset hrefs), if it has one."""
    for link in item.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == "self" and isinstance(link.get("href"), str):
            return str(link["href"])
    return None


def _brief(exc: BaseException, limit: int = 200) -> str:
    """An exception's text on one line, cut to ``limit`` characters (servers may send whole HTML pages)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
