import numpy as np
import pytest
from shapely.geometry import box

from geo import geodesic_area_m2, grid_for, rasterize_mask, utm_epsg_for


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [(12.5, 49.0, 32633), (11.99, 49.0, 32632), (-47.1, -22.9, 32723), (152.3, -27.5, 32756), (180.0, 0.0, 32660)],
)
def test_utm_epsg_picks_zone_and_hemisphere(lon, lat, epsg):
    assert utm_epsg_for(lon, lat) == epsg


def test_utm_epsg_rejects_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        utm_epsg_for(200, 10)


def test_grid_is_snapped_to_whole_pixels_and_covers_the_area():
    area = box(13.40, 52.50, 13.41, 52.505)
    g = grid_for(area, resolution_m=10, buffer_m=50)
    assert g.crs == "EPSG:32633"
    left, bottom, right, top = g.bounds
    assert left % 10 == 0
    assert top % 10 == 0
    assert g.width == round((right - left) / 10)
    assert g.height == round((top - bottom) / 10)
    # ~680 m x 555 m plus 2 x 50 m buffer at 10 m
    assert 75 <= g.width <= 80
    assert 64 <= g.height <= 68
    w, s, e, n = g.bbox_wgs84
    assert w < 13.40
    assert e > 13.41
    assert s < 52.50
    assert n > 52.505


def test_grid_across_zone_boundary_uses_the_centroid_zone():
    straddling = box(11.995, 49.0, 12.010, 49.005)  # centroid east of 12 deg E: zone 33
    assert grid_for(straddling).crs == "EPSG:32633"


def test_southern_grid_has_positive_northing_and_mask_area_matches():
    site = box(152.280, -27.552, 152.286, -27.547)
    g = grid_for(site, resolution_m=10, buffer_m=0)
    assert g.crs == "EPSG:32756"
    assert g.bounds[1] > 6_000_000
    mask = rasterize_mask(site, g)
    # pixel count x 100 m2 is the area within a couple of edge pixels' worth
    assert mask.sum() * 100 == pytest.approx(geodesic_area_m2(site), rel=0.06)


def test_rasterize_empty_geometry_gives_empty_mask():
    g = grid_for(box(0.1, 0.1, 0.11, 0.11))
    assert not rasterize_mask(box(0, 0, 0, 0).buffer(0), g).any()
    assert rasterize_mask(box(0.1, 0.1, 0.11, 0.11), g).dtype == np.bool_
