"""Seeded generators of small portfolios for tests."""

from __future__ import annotations

import copy
from typing import Any

from aoi.demo import demo_portfolio
from aoi.portfolio import loans_to_csv, portfolio_to_feature_collection


def demo_collection() -> dict[str, Any]:
    """The demo portfolio as a parsed GeoJSON document (a fresh deep copy each call)."""
    return copy.deepcopy(portfolio_to_feature_collection(demo_portfolio().sites))


def demo_loans_csv() -> str:
    """The demo loans as CSV text."""
    return loans_to_csv(demo_portfolio().loans)


def square(lon: float, lat: float, d: float) -> dict[str, Any]:
    """A GeoJSON Polygon: a square of side ``d`` degrees with its south-west corner at (lon, lat)."""
    return {
        "type": "Polygon",
        "coordinates": [[[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]],
    }


def bowtie(lon: float, lat: float, d: float) -> dict[str, Any]:
    """A self-intersecting GeoJSON Polygon (invalid: a 'bowtie')."""
    return {
        "type": "Polygon",
        "coordinates": [[[lon, lat], [lon + d, lat + d], [lon + d, lat], [lon, lat + d], [lon, lat]]],
    }
