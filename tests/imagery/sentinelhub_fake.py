"""A small Sentinel Hub (OAuth token, Catalog API, Process API) over a simulated archive.

It answers what sentinelhub-py sends, closely enough for the real client:

* ``POST /auth/realms/main/protocol/openid-connect/token``: client-credentials grant (form body
  with ``client_id`` and ``client_secret``), a JSON token with ``expires_in``; unknown clients
  get 401 ``invalid_client`` as the real service does;
* ``POST /api/v1/catalog/1.0.0/search``: STAC item search, paged through ``context.next``;
* ``POST /api/v1/process``: reads the bands named in the evalscript from the archive onto the
  requested bounds (CRS, bbox, width, height) and returns a FLOAT32 GeoTIFF, as the service does
  for the evalscripts of :mod:`imagery.providers.sentinelhub`.

Bearer tokens are checked on the Catalog and Process endpoints (401 otherwise).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from pytest_httpserver import HTTPServer
from rasterio.io import MemoryFile
from werkzeug import Request, Response

from geo import Grid
from imagery.providers.local import LocalArchiveProvider, bbox_intersects
from imagery.providers.stacitem import parse_datetime_utc

TOKEN_PATH = "/auth/realms/main/protocol/openid-connect/token"
CATALOG_SEARCH_PATH = "/api/v1/catalog/1.0.0/search"
PROCESS_PATH = "/api/v1/process"

_PREFIXES = itertools.count(1)


class FakeSentinelHub:
    """Serve a local archive as Sentinel Hub under ``prefix`` on ``server``.

    Attributes:
        base_url: Give it to the provider as its base URL.
        clients: Accepted client id -> secret.
        process_requests: Every Process API request body answered.
        catalog_requests: Every Catalog search body answered.
        token_requests: How many tokens were issued.
        process_status: When set, the Process API answers this status (after the token check).
    """

    def __init__(self, server: HTTPServer, archive: Path, *, clients: dict[str, str] | None = None) -> None:
        self.server = server
        self.prefix = f"/sh{next(_PREFIXES)}"
        self.base_url = server.url_for(self.prefix)
        self.clients = clients if clients is not None else {"sitewatch": "s3cret"}
        self.local = LocalArchiveProvider(archive)
        self.process_requests: list[dict[str, Any]] = []
        self.catalog_requests: list[dict[str, Any]] = []
        self.token_requests = 0
        self.process_status: int | None = None
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self.scenes = self.local.search((-180.0, -90.0, 180.0, 90.0), date(1970, 1, 1), date(2100, 1, 1))

    def install(self) -> FakeSentinelHub:
        self.server.expect_request(self.prefix + TOKEN_PATH, method="POST").respond_with_handler(self._token)
        self.server.expect_request(self.prefix + CATALOG_SEARCH_PATH, method="POST").respond_with_handler(self._search)
        self.server.expect_request(self.prefix + PROCESS_PATH, method="POST").respond_with_handler(self._process)
        return self

    # ------------------------------------------------------------------ auth

    def _token(self, request: Request) -> Response:
        form = request.form
        with self._lock:
            self.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type", "error_description": "Unsupported grant type"}, 400)
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if client_id not in self.clients or self.clients[client_id] != secret:
            return _json(
                {"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"}, 401
            )
        token = f"tok-{client_id}-{self.token_requests}"
        with self._lock:
            self._tokens.add(token)
        return _json({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "profile email"})

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[len("Bearer ") :] in self._tokens

    # ------------------------------------------------------------------ catalog

    def _search(self, request: Request) -> Response:
        if not self._authorised(request):
            return _sh_error(401, "Unauthorized", "Invalid authentication token", "COMMON_UNAUTHORIZED")
        body = request.get_json(force=True)
        with self._lock:
            self.catalog_requests.append(body)
        if body.get("collections") != ["sentinel-2-l2a"]:
            return _sh_error(400, "Bad Request", f"unknown collections {body.get('collections')}", "COMMON_BAD_PAYLOAD")
        lo, _, hi = str(body.get("datetime", "../..")).partition("/")
        bbox = tuple(body.get("bbox") or (-180, -90, 180, 90))
        hits = [
            s
            for s in self.scenes
            if bbox_intersects(s.bbox_wgs84, bbox)  # type: ignore[arg-type]
            and (lo in ("", "..") or s.acquired_at_utc >= parse_datetime_utc(lo))
            and (hi in ("", "..") or s.acquired_at_utc <= parse_datetime_utc(hi))
        ]
        limit, start = int(body.get("limit", 10)), int(body.get("next") or 0)
        page = hits[start : start + limit]
        context: dict[str, Any] = {"limit": limit, "returned": len(page)}
        if start + limit < len(hits):
            context["next"] = start + limit
        features = [_feature(s, self.base_url) for s in page]
        return _json({"type": "FeatureCollection", "features": features, "links": [], "context": context})

    # ------------------------------------------------------------------ process

    def _process(self, request: Request) -> Response:
        if not self._authorised(request):
            return _sh_error(401, "Unauthorized", "Invalid authentication token", "COMMON_UNAUTHORIZED")
        if self.process_status is not None:
            return _sh_error(self.process_status, "Failure", "induced failure", "COMMON_EXCEPTION")
        body = request.get_json(force=True)
        with self._lock:
            self.process_requests.append(body)
        responses = body["output"]["responses"]
        if len(responses) != 1 or responses[0]["format"]["type"] != "image/tiff":
            return _sh_error(400, "Bad Request", "this fake serves one image/tiff output", "RENDERER_EXCEPTION")
        if request.headers.get("accept") != "image/tiff":
            return _sh_error(400, "Bad Request", "Accept must be image/tiff", "COMMON_BAD_PAYLOAD")
        bands = _evalscript_bands(body["evalscript"])
        data_filter = body["input"]["data"][0]["dataFilter"]
        t0 = parse_datetime_utc(data_filter["timeRange"]["from"])
        t1 = parse_datetime_utc(data_filter["timeRange"]["to"])
        scenes = [s for s in self.scenes if t0 <= s.acquired_at_utc <= t1]
        bounds = body["input"]["bounds"]
        epsg = bounds["properties"]["crs"].rsplit("/", 1)[-1]
        west, south, east, north = bounds["bbox"]
        width, height = body["output"]["width"], body["output"]["height"]
        transform = Affine((east - west) / width, 0, west, 0, -(north - south) / height, north)
        grid = Grid(f"EPSG:{epsg}", transform, width, height)
        if scenes:
            data = self.local.read(scenes[-1], grid, bands).values.astype(np.float32)  # mostRecent
        else:
            data = np.full((len(bands), height, width), np.nan, dtype=np.float32)
            data[[i for i, b in enumerate(bands) if b == "SCL"]] = 0.0
        return Response(_geotiff(data, grid), mimetype="image/tiff")


def _evalscript_bands(evalscript: str) -> list[str]:
    match = re.search(r"bands:\s*(\[[^\]]*\])", evalscript)
    if match is None:
        raise ValueError("no input bands in evalscript")
    return [b for b in json.loads(match.group(1)) if b != "dataMask"]


def _geotiff(data: np.ndarray, grid: Grid) -> bytes:
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": data.shape[0],
        "dtype": "float32",
        "crs": grid.crs,
        "transform": grid.transform,
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
        return bytes(mem.read())


def _feature(scene: Any, base_url: str) -> dict[str, Any]:
    w, s, e, n = scene.bbox_wgs84
    return {
        "stac_version": "1.0.0",
        "type": "Feature",
        "id": scene.scene_id,
        "bbox": [w, s, e, n],
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "properties": {
            "datetime": scene.acquired_at_utc.isoformat().replace("+00:00", "Z"),
            "platform": str(scene.properties.get("platform", "sentinel-2a")),
            "instruments": ["msi"],
            "constellation": "sentinel-2",
            "gsd": 10,
            "eo:cloud_cover": scene.cloud_pct,
            "proj:epsg": scene.properties.get("proj:epsg"),
        },
        "assets": {"data": {"href": f"{base_url}/api/v1/process", "title": "Data", "type": "image/tiff"}},
        "links": [],
    }


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _sh_error(status: int, reason: str, message: str, code: str) -> Response:
    return _json({"error": {"status": status, "reason": reason, "message": message, "code": code}}, status)
