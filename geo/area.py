"""Areas on the ellipsoid."""

from pyproj import Geod
from shapely.geometry.base import BaseGeometry

_GEOD = Geod(ellps="WGS84")


def geodesic_area_m2(geometry_wgs84: BaseGeometry) -> float:
    """Area of a WGS84 (lon, lat) polygon or multipolygon in square metres, on the ellipsoid."""
    area, _ = _GEOD.geometry_area_perimeter(geometry_wgs84)
    return abs(float(area))
