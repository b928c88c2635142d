"""XYZ PNG tiles (Web Mercator) of a site's scene in true colour and of its change overlay, with rio-tiler.

The readers are opened per tile on COGs of the site grid: the scene cache file (float32
reflectance, one band per name) when present, else the local archive's per-band COGs
(uint16 digital numbers, L2A offset 1000). Only tiles that touch the site's bounds exist.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import morecantile
import numpy as np
from rio_tiler.io import Reader
from rio_tiler.models import ImageData

from geo.types import BBox
from imagery.render import TRUECOLOR_MAX

logger = logging.getLogger(__name__)

TMS: Final = morecantile.tms.get("WebMercatorQuad")
#: Sites are a few hundred metres across: below zoom 12 a site is under a pixel or two.
MINZOOM: Final = 12
MAXZOOM: Final = 18
TILE_SIZE: Final = 256
TRUE_COLOUR: Final = ("B04", "B03", "B02")
#: Display stretch of true colour: surface reflectance 0-0.3, or L2A digital numbers 1000-4000.
REFLECTANCE_RANGE: Final = (0.0, TRUECOLOR_MAX)  # the same stretch as evidence pictures
DN_RANGE: Final = (1000.0, 4000.0)
#: Change probability 0-1 drawn in red whose opacity grows with the probability.
CHANGE_COLORMAP: Final = {i: (230, 40, 40, min(255, int(i * 1.1))) for i in range(256)}


def tile_bounds_wgs84(z: int, x: int, y: int) -> BBox:
    """(west, south, east, north) of an XYZ tile in degrees."""
    b = TMS.bounds(morecantile.Tile(x, y, z))
    return (b.left, b.bottom, b.right, b.top)


def tile_touches(bounds_wgs84: BBox, z: int, x: int, y: int) -> bool:
    """Whether a tile exists for an area: a valid zoom and index, and it intersects the bounds."""
    if not (MINZOOM <= z <= MAXZOOM) or not (0 <= x < 2**z and 0 <= y < 2**z):
        return False
    w, s, e, n = tile_bounds_wgs84(z, x, y)
    bw, bs, be, bn = bounds_wgs84
    return w < be and e > bw and s < bn and n > bs


def _read(path: Path, z: int, x: int, y: int, indexes: Sequence[int]) -> ImageData:
    with Reader(str(path)) as src:
        img: ImageData = src.tile(x, y, z, tilesize=TILE_SIZE, indexes=list(indexes), resampling_method="nearest")
    return img


def true_colour_png(cache_cog: Path | None, band_files: Sequence[Path], z: int, x: int, y: int) -> bytes:
    """A true-colour PNG tile from a cached multi-band COG, else from per-band COGs (red, green, blue).

    Raises:
        FileNotFoundError: neither source exists.
    """
    if cache_cog is not None and cache_cog.exists():
        with Reader(str(cache_cog)) as src:
            names = list(src.dataset.descriptions)
        if all(b in names for b in TRUE_COLOUR):
            img = _read(cache_cog, z, x, y, [names.index(b) + 1 for b in TRUE_COLOUR])
            return img.rescale(in_range=[REFLECTANCE_RANGE] * 3).render(img_format="PNG")
    if not band_files or not all(p.exists() for p in band_files):
        raise FileNotFoundError("no imagery for this scene in the scene cache or the archive")
    parts = [_read(p, z, x, y, [1]) for p in band_files]
    stacked = np.ma.concatenate([p.array for p in parts], axis=0)  # type: ignore[no-untyped-call]
    img = ImageData(stacked, bounds=parts[0].bounds, crs=parts[0].crs)
    return img.rescale(in_range=[DN_RANGE] * 3).render(img_format="PNG")


def change_png(change_cog: Path, z: int, x: int, y: int) -> bytes:
    """A change-probability PNG tile (transparent where nothing changed or nothing was seen)."""
    img = _read(change_cog, z, x, y, [1])
    return img.rescale(in_range=[(0.0, 1.0)]).render(img_format="PNG", colormap=CHANGE_COLORMAP)


def tilejson(name: str, tiles_url: str, bounds_wgs84: BBox, *, description: str) -> dict[str, object]:
    """A TileJSON 3.0.0 document (https://github.com/mapbox/tilejson-spec/tree/master/3.0.0)."""
    w, s, e, n = bounds_wgs84
    return {
        "tilejson": "3.0.0",
        "name": name,
        "description": description,
        "tiles": [tiles_url],
        "scheme": "xyz",
        "minzoom": MINZOOM,
        "maxzoom": MAXZOOM,
        "bounds": [w, s, e, n],
        "center": [(w + e) / 2, (s + n) / 2, 16],
    }
