"""A small STAC API (Earth Search flavoured) over a simulated local archive, served by pytest-httpserver.

It implements what pystac-client and GDAL's ``/vsicurl/`` use: the landing page, ``/conformance``,
``/search`` (GET and POST, ``limit`` and ``next`` paging with a token) and the COG files with
HEAD and ``Range`` requests answered ``206 Partial Content``. Faults (HTTP statuses, slow
answers) can be queued for the search endpoint.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from imagery.providers.local import bbox_intersects
from imagery.providers.stacitem import parse_datetime_utc

#: Earth Search v1 asset keys of the simulated bands.
EARTH_SEARCH_KEYS = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B08": "nir",
    "B11": "swir16",
    "B12": "swir22",
    "SCL": "scl",
}

#: Each server gets its own path prefix: GDAL caches what it learnt about a URL (size, 404) per process.
_PREFIXES = itertools.count(1)

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]


class FakeStacApi:
    """Serve a local archive as a STAC API under ``prefix`` on ``server``.

    Attributes:
        url: Landing page URL (give it to the provider).
        faults: Queue for ``/search``: an int answers that HTTP status, a float sleeps that many
            seconds before answering normally.
        always_fail: When set, every ``/search`` answers this status.
        searches: (method, parameters) of every ``/search`` request answered normally.
        cog_requests: (method, path, Range header, status) of every COG request.
    """

    def __init__(self, server: HTTPServer, archive: Path, *, prefix: str | None = None) -> None:
        self.server = server
        self.archive = archive
        self.prefix = prefix or f"/es{next(_PREFIXES)}"
        self.url = server.url_for(self.prefix)
        self.faults: list[int | float] = []
        self.always_fail: int | None = None
        self.searches: list[tuple[str, dict[str, Any]]] = []
        self.cog_requests: list[tuple[str, str, str | None, int]] = []
        self.missing_cogs: set[str] = set()
        self._lock = threading.Lock()
        self.items = self._items()

    def install(self) -> FakeStacApi:
        p = re.escape(self.prefix)
        self.server.expect_request(re.compile(rf"^{p}/?$")).respond_with_handler(self._landing)
        self.server.expect_request(f"{self.prefix}/conformance").respond_with_json({"conformsTo": CONFORMANCE})
        self.server.expect_request(f"{self.prefix}/search").respond_with_handler(self._search)
        self.server.expect_request(re.compile(rf"^{p}/cogs/.+")).respond_with_handler(self._cog)
        return self

    # ------------------------------------------------------------------ catalog

    def _items(self) -> list[dict[str, Any]]:
        """Every archive item as an Earth Search item (plus an L1C twin, to check collection filtering)."""
        items = []
        for path in sorted(self.archive.glob("*/*/*.json")):
            doc = json.loads(path.read_text())
            if doc.get("type") != "Feature":
                continue
            rel_dir = path.parent.relative_to(self.archive).as_posix()
            assets: dict[str, Any] = {}
            for band, asset in doc["assets"].items():
                asset = dict(asset)
                asset["href"] = f"{self.url}/cogs/{rel_dir}/{band}.tif"
                assets[EARTH_SEARCH_KEYS[band]] = asset
            assets["thumbnail"] = {"href": f"{self.url}/cogs/{rel_dir}/thumb.jpg", "roles": ["thumbnail"]}
            item = dict(doc, collection="sentinel-2-l2a", assets=assets)
            item["links"] = [{"rel": "self", "href": f"{self.url}/collections/sentinel-2-l2a/items/{doc['id']}"}]
            items.append(item)
            items.append(dict(item, id=doc["id"].replace("L2A", "L1C"), collection="sentinel-2-l1c"))
        # Newest first, as Earth Search sorts by default.
        return sorted(items, key=lambda it: it["properties"]["datetime"], reverse=True)

    def _landing(self, request: Request) -> Response:
        links = [
            {"rel": "self", "href": self.url, "type": "application/json"},
            {"rel": "root", "href": self.url, "type": "application/json"},
            {"rel": "conformance", "href": f"{self.url}/conformance", "type": "application/json"},
            {"rel": "search", "href": f"{self.url}/search", "type": "application/geo+json", "method": "GET"},
            {"rel": "search", "href": f"{self.url}/search", "type": "application/geo+json", "method": "POST"},
        ]
        body = {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "fake-earth-search",
            "description": "A STAC API over a simulated archive",
            "conformsTo": CONFORMANCE,
            "links": links,
        }
        return Response(json.dumps(body), mimetype="application/json")

    def _search(self, request: Request) -> Response:
        with self._lock:
            fault = self.always_fail if self.always_fail is not None else (self.faults.pop(0) if self.faults else None)
        if isinstance(fault, int):
            return Response(f"<html><body>{fault} Service trouble</body></html>", status=fault, mimetype="text/html")
        if isinstance(fault, float):
            time.sleep(fault)
        if request.method == "POST":
            params: dict[str, Any] = request.get_json(force=True) or {}
        else:
            params = _get_params(request.args)
        with self._lock:
            self.searches.append((request.method, params))
        hits = [it for it in self.items if _matches(it, params)]
        limit = int(params.get("limit") or 10)
        start = int(params.get("token") or 0)
        page = hits[start : start + limit]
        links: list[dict[str, Any]] = [{"rel": "root", "href": self.url, "type": "application/json"}]
        if start + limit < len(hits):
            token = str(start + limit)
            if request.method == "POST":
                links.append(
                    {
                        "rel": "next",
                        "href": f"{self.url}/search",
                        "method": "POST",
                        "body": {"token": token},
                        "merge": True,
                        "type": "application/geo+json",
                    }
                )
            else:
                query = {k: v for k, v in request.args.items() if k != "token"}
                query["token"] = token
                links.append({"rel": "next", "href": f"{self.url}/search?{urlencode(query)}", "method": "GET"})
        body = {
            "type": "FeatureCollection",
            "features": page,
            "links": links,
            "numberMatched": len(hits),
            "numberReturned": len(page),
        }
        return Response(json.dumps(body), mimetype="application/geo+json")

    # ------------------------------------------------------------------ files

    def _cog(self, request: Request) -> Response:
        rel = request.path[len(f"{self.prefix}/cogs/") :]
        path = self.archive / rel
        if rel in self.missing_cogs or not path.is_file() or ".." in rel:
            resp = Response("not found", status=404)
        else:
            data = path.read_bytes()
            # Werkzeug answers Range requests with 206 and a Content-Range header, HEAD without a body.
            resp = Response(data, mimetype="image/tiff").make_conditional(
                request, accept_ranges=True, complete_length=len(data)
            )
        with self._lock:
            self.cog_requests.append((request.method, rel, request.headers.get("Range"), resp.status_code))
        return resp


def _get_params(args: Mapping[str, str]) -> dict[str, Any]:
    """GET query parameters in the shape of a POST body."""
    params: dict[str, Any] = dict(args)
    if "bbox" in params:
        params["bbox"] = [float(v) for v in params["bbox"].split(",")]
    if "collections" in params:
        params["collections"] = params["collections"].split(",")
    return params


def _matches(item: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    collections = params.get("collections")
    if collections and item["collection"] not in collections:
        return False
    bbox = params.get("bbox")
    if bbox and not bbox_intersects(tuple(item["bbox"]), tuple(bbox)):  # type: ignore[arg-type]
        return False
    interval = params.get("datetime")
    if interval:
        when = parse_datetime_utc(item["properties"]["datetime"])
        lo, _, hi = str(interval).partition("/")
        if lo not in ("", "..") and when < _when(lo):
            return False
        if hi not in ("", "..") and when > _when(hi):
            return False
    return True


def _when(text: str) -> datetime:
    return parse_datetime_utc(text)
