"""A provider over Sentinel Hub (or the Copernicus Data Space Ecosystem), through sentinelhub-py.

Searching uses the Catalog API (``SentinelHubCatalog.search``, STAC item search with ``next``
paging in the response ``context``). Reading uses the Process API (``SentinelHubRequest``): one
request per scene and band list, on the site grid (its CRS, bounds and size), with an evalscript
that returns the bands as FLOAT32 harmonised surface reflectance (NaN where there is no data) and
SCL as class values (0 where there is no data), all in one GeoTIFF.

The Process API mosaics everything sensed in the request's time range, so a scene here is one
satellite *pass*: Catalog items of the same pass (neighbouring MGRS tiles, seconds apart) are
merged into one :class:`SceneRef`, and a read asks for the pass's time window.

Credentials are OAuth client credentials (client id and secret). The token comes from
``token_url`` (default ``<base_url>/auth/realms/main/protocol/openid-connect/token``); the
session that holds it belongs to the provider and is refreshed before it expires.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import requests
import xarray as xr
from oauthlib.oauth2.rfc6749.errors import InsecureTransportError, OAuth2Error
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile
from sentinelhub.api.catalog import SentinelHubCatalog
from sentinelhub.api.process import SentinelHubRequest
from sentinelhub.config import SHConfig
from sentinelhub.constants import CRS, MimeType
from sentinelhub.data_collections import DataCollection
from sentinelhub.download.sentinelhub_client import SentinelHubDownloadClient
from sentinelhub.download.session import SentinelHubSession
from sentinelhub.exceptions import DownloadFailedException, OutOfRequestsException
from sentinelhub.geometry import BBox

from geo import BBox as BBoxWGS84
from geo import Grid
from imagery.errors import (
    MissingBandError,
    ProviderAuthError,
    ProviderUnavailableError,
    SceneCorruptError,
    SceneUnavailableError,
)
from imagery.providers.base import BandAsset, SceneRef
from imagery.providers.local import as_utc_bounds
from imagery.providers.reading import scene_array
from imagery.providers.stacitem import parse_datetime_utc

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Sentinel-2 L2A bands of the Process API (docs.sentinel-hub.com/api/latest/data/sentinel-2-l2a/).
SH_L2A_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "SCL")

#: Items this close in time are one pass (a datatake crosses a tile in seconds; revisits are days apart).
PASS_WINDOW = timedelta(minutes=30)

#: What to do about a refused token, in the words of the settings that hold the credentials.
CREDENTIALS_HINT = (
    "check SITEWATCH_SENTINELHUB_CLIENT_ID and SITEWATCH_SENTINELHUB_CLIENT_SECRET "
    "(an OAuth client of the Sentinel Hub dashboard)"
)

_AUTH_STATUSES = (401, 403)


def evalscript_for(bands: Sequence[str]) -> str:
    """An evalscript (version 3) returning ``bands`` in order as one FLOAT32 output.

    Spectral bands are surface reflectance (``REFLECTANCE`` units, harmonised), NaN where
    ``dataMask`` is 0; ``SCL`` is its class number, 0 where there is no data.
    """
    units = ", ".join('"DN"' if b == "SCL" else '"REFLECTANCE"' for b in bands)
    names = ", ".join(f'"{b}"' for b in bands)
    no_data = ", ".join("0" if b == "SCL" else "NaN" for b in bands)
    values = ", ".join(f"s.{b}" for b in bands)
    return f"""//VERSION=3
function setup() {{
  return {{
    input: [{{bands: [{names}, "dataMask"], units: [{units}, "DN"]}}],
    output: {{id: "default", bands: {len(bands)}, sampleType: "FLOAT32"}}
  }};
}}
function evaluatePixel(s) {{
  if (s.dataMask === 0) {{ return [{no_data}]; }}
  return [{values}];
}}
"""


class SentinelHubProvider:
    """Sentinel-2 L2A scenes from Sentinel Hub's Catalog and Process APIs.

    Args:
        client_id: OAuth client id.
        client_secret: OAuth client secret.
        base_url: Service deployment, e.g. ``https://services.sentinel-hub.com`` or
            ``https://sh.dataspace.copernicus.eu``.
        token_url: OAuth token endpoint; default ``<base_url>/auth/realms/main/protocol/openid-connect/token``
            (the Copernicus Data Space uses ``https://identity.dataspace.copernicus.eu/auth/realms/CDSE/...``).
        collection: Catalog and Process API collection id.
        timeout_s: Timeout of each HTTP request, seconds.
        retries: Further attempts after a timeout or HTTP 5xx (and the cap on HTTP 429 waits).
        backoff_s: Wait before the first retry, seconds; sentinelhub-py triples it at each further retry.
        page_size: Items per Catalog API page.

    Raises:
        ValueError: missing credentials or a base URL that is not http(s).
    """

    name = "sentinelhub"

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        base_url: str = "https://services.sentinel-hub.com",
        *,
        token_url: str | None = None,
        collection: str = "sentinel-2-l2a",
        timeout_s: float = 120.0,
        retries: int = 3,
        backoff_s: float = 5.0,
        page_size: int = 100,
    ) -> None:
        problems = []
        if not client_id or not client_secret:
            problems.append(f"client_id and client_secret are required ({CREDENTIALS_HINT})")
        if not base_url.startswith(("http://", "https://")):
            problems.append(f"base_url {base_url!r} is not an http(s) URL")
        if not timeout_s > 0 or retries < 0 or backoff_s < 0:
            problems.append(f"need timeout_s > 0, retries >= 0, backoff_s >= 0: {timeout_s}, {retries}, {backoff_s}")
        if problems:
            raise ValueError("invalid SentinelHubProvider settings: " + "; ".join(problems))
        self.base_url = base_url.rstrip("/")
        self.token_url = token_url or f"{self.base_url}/auth/realms/main/protocol/openid-connect/token"
        self.collection = collection
        self.page_size = page_size
        self.config = SHConfig(
            use_defaults=True,  # never read ~/.config/sentinelhub or SH_* variables: settings come from us
            sh_client_id=client_id,
            sh_client_secret=client_secret,
            sh_base_url=self.base_url,
            sh_token_url=self.token_url,
            download_timeout_seconds=float(timeout_s),
            max_download_attempts=int(retries) + 1,
            download_sleep_time=float(backoff_s),
            max_retries=int(retries) + 1,
        )
        self.data_collection = _collection_at(self.base_url, collection)
        self._client: SentinelHubDownloadClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SentinelHubProvider(base_url={self.base_url!r}, collection={self.collection!r})"

    # ------------------------------------------------------------------ search

    def search(self, bbox_wgs84: BBoxWGS84, start: date | datetime, end: date | datetime) -> list[SceneRef]:
        """Passes over ``bbox_wgs84`` sensed in ``[start, end]``, oldest first (one scene per pass).

        Raises:
            ProviderAuthError: the credentials were refused.
            ProviderUnavailableError: the service kept failing or refused the search.
        """
        t0, t1 = as_utc_bounds(start, end)

        def run() -> list[dict[str, Any]]:
            catalog = SentinelHubCatalog(config=self.config)
            catalog.client = self._download_client()  # our session, not sentinelhub-py's global cache
            found = catalog.search(
                self.collection, bbox=BBox(bbox_wgs84, crs=CRS.WGS84), time=(t0, t1), limit=self.page_size
            )
            return list(found)

        features = self._call("Catalog search", f"{self.base_url}/api/v1/catalog/1.0.0/search", run)
        scenes = _passes(self._scene_ref(f) for f in features)
        logger.debug("%s: %d passes (%d items) between %s and %s", self.base_url, len(scenes), len(features), t0, t1)
        return scenes

    def _scene_ref(self, feature: Mapping[str, Any]) -> SceneRef | None:
        props: Mapping[str, Any] = feature.get("properties") or {}
        bbox = feature.get("bbox")
        item_id = feature.get("id")
        when = props.get("datetime")
        if not isinstance(item_id, str) or not isinstance(when, str) or not isinstance(bbox, list) or len(bbox) < 4:
            logger.warning("skipping Catalog item %r without id, datetime or bbox", item_id)
            return None
        cloud, gsd = props.get("eo:cloud_cover"), props.get("gsd")
        baseline = props.get("s2:processing_baseline")
        try:
            acquired = parse_datetime_utc(when)
        except ValueError as exc:
            logger.warning("skipping Catalog item %s: bad datetime %r (%s)", item_id, when, exc)
            return None
        return SceneRef(
            provider=self.name,
            scene_id=item_id,
            acquired_at_utc=acquired,
            bbox_wgs84=(float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])),
            cloud_pct=float(cloud) if cloud is not None else None,
            gsd_m=float(gsd) if gsd is not None else None,
            # The Process API returns harmonised reflectance: no scale or offset left to apply.
            assets={b: BandAsset(href=f"sentinelhub://{self.collection}/{item_id}/{b}") for b in SH_L2A_BANDS},
            processing_baseline=str(baseline) if baseline is not None else None,
            properties=dict(props),
        )

    # ------------------------------------------------------------------ read

    def read(self, scene: SceneRef, grid: Grid, bands: Sequence[str]) -> xr.DataArray:
        """Read bands of one pass onto a grid with the Process API (see :meth:`SceneProvider.read`).

        Raises:
            MissingBandError: a band the collection does not have.
            ProviderAuthError: the credentials were refused.
            SceneUnavailableError: the service kept failing or refused the request.
            SceneCorruptError: the answer is not a GeoTIFF of the grid's size and band count.
        """
        sh_bands = [_sh_band(scene, band) for band in bands]  # MissingBandError before any I/O
        try:
            sh_crs = CRS(grid.crs)
        except ValueError as exc:
            raise SceneUnavailableError(f"Sentinel Hub cannot serve grid CRS {grid.crs}: {exc}") from exc
        request = SentinelHubRequest(
            evalscript=evalscript_for(sh_bands),
            input_data=[
                SentinelHubRequest.input_data(
                    self.data_collection,
                    time_interval=(scene.acquired_at_utc - PASS_WINDOW, scene.acquired_at_utc + PASS_WINDOW),
                    other_args={"processing": {"harmonizeValues": True}},
                )
            ],
            responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
            bbox=BBox(grid.bounds, crs=sh_crs),
            size=(grid.width, grid.height),
            config=self.config,
        )

        def run() -> bytes:
            (response,) = self._download_client().download(request.download_list, max_threads=1, decode_data=False)
            return bytes(response.content)

        url = f"{self.base_url}/api/v1/process"
        content = self._call(f"Process API read of {scene.scene_id}", url, run, unavailable=SceneUnavailableError)
        return scene_array(_decode(content, grid, sh_bands, scene.scene_id), grid, bands, scene)

    # ------------------------------------------------------------------ plumbing

    def _download_client(self) -> SentinelHubDownloadClient:
        with self._lock:
            if self._client is None:
                session = SentinelHubSession(config=self.config)  # fetches the first token now
                self._client = SentinelHubDownloadClient(config=self.config, session=session)
            return self._client

    def _call(
        self,
        what: str,
        url: str,
        run: Callable[[], T],
        *,
        unavailable: type[ProviderUnavailableError] | type[SceneUnavailableError] = ProviderUnavailableError,
    ) -> T:
        """Run one sentinelhub-py call, mapping its errors to ours (auth, unavailable)."""
        try:
            return run()
        except InsecureTransportError as exc:
            raise unavailable(
                f"Sentinel Hub token URL {self.token_url} is not https; oauthlib refuses plain http "
                "(OAUTHLIB_INSECURE_TRANSPORT=1 allows it, for local test servers only)"
            ) from exc
        except OAuth2Error as exc:
            raise ProviderAuthError(
                f"Sentinel Hub at {self.token_url} refused the credentials "
                f"(HTTP {exc.status_code}: {exc.error}: {exc.description}); {CREDENTIALS_HINT}"
            ) from exc
        except DownloadFailedException as exc:
            status = _status_of(exc)
            reason = _server_reason(exc)
            if status in _AUTH_STATUSES:
                raise ProviderAuthError(
                    f"Sentinel Hub {what} at {url} was refused (HTTP {status}: {reason}); {CREDENTIALS_HINT}"
                ) from exc
            last = f"HTTP {status}: {reason}" if status is not None else reason
            raise unavailable(f"Sentinel Hub {what} at {url} failed; last status: {last}") from exc
        except OutOfRequestsException as exc:
            raise unavailable(f"Sentinel Hub {what} at {url} failed: still rate limited (HTTP 429)") from exc
        except requests.RequestException as exc:
            raise unavailable(f"Sentinel Hub {what} at {url} failed: {exc}") from exc


def _collection_at(base_url: str, collection: str) -> DataCollection:
    """The L2A data collection bound to ``base_url`` (sentinelhub-py binds it to the main deployment)."""
    default = DataCollection.SENTINEL2_L2A
    if collection != default.api_id:
        raise ValueError(f"collection {collection!r} is not supported (only {default.api_id!r})")
    if base_url == str(default.service_url).rstrip("/"):
        return default
    # define_from registers the collection once per name; the same name and URL return the same one.
    digest = hashlib.sha1(base_url.encode(), usedforsecurity=False).hexdigest()[:10]
    return default.define_from(f"SITEWATCH_S2L2A_{digest}", service_url=base_url)


def _passes(refs: Iterable[SceneRef | None]) -> list[SceneRef]:
    """Scenes oldest first, with items of one pass (within :data:`PASS_WINDOW`) merged into the first."""
    ordered = sorted((r for r in refs if r is not None), key=lambda s: (s.acquired_at_utc, s.scene_id))
    out: list[SceneRef] = []
    for ref in ordered:
        if out and ref.acquired_at_utc - out[-1].acquired_at_utc <= PASS_WINDOW:
            first = out[-1]
            tiles = [*first.properties.get("sitewatch:items", [first.scene_id]), ref.scene_id]
            west, south, east, north = first.bbox_wgs84
            merged = (
                min(west, ref.bbox_wgs84[0]),
                min(south, ref.bbox_wgs84[1]),
                max(east, ref.bbox_wgs84[2]),
                max(north, ref.bbox_wgs84[3]),
            )
            clouds = [c for c in (first.cloud_pct, ref.cloud_pct) if c is not None]
            out[-1] = SceneRef(
                provider=first.provider,
                scene_id=first.scene_id,
                acquired_at_utc=first.acquired_at_utc,
                bbox_wgs84=merged,
                cloud_pct=max(clouds) if clouds else None,
                gsd_m=first.gsd_m,
                assets=first.assets,
                processing_baseline=first.processing_baseline,
                properties={**first.properties, "sitewatch:items": tiles},
            )
            continue
        out.append(ref)
    return out


def _sh_band(scene: SceneRef, band: str) -> str:
    """The Process API name of a band (aliases resolved through the scene's assets)."""
    href = scene.asset(band).href
    name = href.rsplit("/", 1)[-1]
    if name not in SH_L2A_BANDS:
        raise MissingBandError(f"scene {scene.scene_id}: band {band!r} is not a Sentinel Hub L2A band")
    return name


def _decode(content: bytes, grid: Grid, bands: Sequence[str], scene_id: str) -> npt.NDArray[np.float32]:
    """The Process API GeoTIFF as (band, y, x) float32: reflectance with NaN, SCL with 0 for no data."""
    try:
        with MemoryFile(content) as mem, mem.open() as src:
            if (src.count, src.height, src.width) != (len(bands), grid.height, grid.width):
                raise SceneCorruptError(
                    f"Sentinel Hub answer for {scene_id} is {src.count}x{src.height}x{src.width}, "
                    f"expected {len(bands)}x{grid.height}x{grid.width}"
                )
            data: npt.NDArray[np.float32] = src.read(out_dtype="float32")
    except RasterioError as exc:
        raise SceneCorruptError(f"Sentinel Hub answer for {scene_id} is not a GeoTIFF: {exc}") from exc
    for i, band in enumerate(bands):
        if band == "SCL":
            data[i][~np.isfinite(data[i])] = 0.0
    return data


def _status_of(exc: DownloadFailedException) -> int | None:
    cause = exc.request_exception
    response = getattr(cause, "response", None)
    status = getattr(response, "status_code", None)
    return int(status) if status is not None else None


def _server_reason(exc: DownloadFailedException) -> str:
    """The service's own error message when there is one, else the exception's first line."""
    response = getattr(exc.request_exception, "response", None)
    if response is not None:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict) and err.get("message"):
                return str(err["message"])
            if isinstance(err, str):
                return f"{err}: {body.get('error_description', '')}".rstrip(": ")
        text = " ".join(str(response.text).split())
        if text:
            return text[:200]
    cause = exc.request_exception
    return " ".join(str(cause or exc).split())[:200]
