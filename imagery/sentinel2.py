"""Sentinel-2 L2A conventions: band names, scene classification (SCL) classes, harmonisation.

Sources:
    * SCL classes: ESA Sentinel-2 L2A Product Specification, "Scene Classification".
    * BOA_ADD_OFFSET: ESA, "Sentinel-2 L2A products: processing baseline 04.00" (2022-01-25).
      From baseline 04.00 on, a digital number encodes ``DN = reflectance * 10000 + 1000``,
      so harmonised reflectance is ``(DN - 1000) / 10000``; before it, ``DN / 10000``.
"""

from __future__ import annotations

from datetime import date
from enum import IntEnum


class Scl(IntEnum):
    """ESA L2A scene-classification classes."""

    NO_DATA = 0
    SATURATED_OR_DEFECTIVE = 1
    DARK_AREA = 2
    CLOUD_SHADOW = 3
    VEGETATION = 4
    NOT_VEGETATED = 5
    WATER = 6
    UNCLASSIFIED = 7
    CLOUD_MEDIUM_PROBABILITY = 8
    CLOUD_HIGH_PROBABILITY = 9
    THIN_CIRRUS = 10
    SNOW_ICE = 11


#: The six 10 m / 20 m bands SiteWatch uses, in cube order.
S2_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08", "B11", "B12")

#: Centre wavelength of each band in micrometres (Sentinel-2A).
S2_CENTER_UM: dict[str, float] = {"B02": 0.490, "B03": 0.560, "B04": 0.665, "B08": 0.842, "B11": 1.610, "B12": 2.190}

#: Native ground sampling distance of each band in metres.
S2_GSD_M: dict[str, float] = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B11": 20, "B12": 20, "SCL": 20}

#: Classes that count as cloud or cloud shadow in a scene's cloud fraction.
CLOUD_CLASSES: frozenset[int] = frozenset(
    {Scl.CLOUD_SHADOW, Scl.CLOUD_MEDIUM_PROBABILITY, Scl.CLOUD_HIGH_PROBABILITY, Scl.THIN_CIRRUS}
)

#: Classes masked out of the datacube by default (no data, defects, clouds and their shadows).
DEFAULT_EXCLUDED_SCL: frozenset[int] = frozenset({Scl.NO_DATA, Scl.SATURATED_OR_DEFECTIVE} | CLOUD_CLASSES)

#: First sensing day of processing baseline 04.00, which added BOA_ADD_OFFSET = -1000.
BASELINE_04_START = date(2022, 1, 25)

#: DN scale and the offset (in DN) of baseline >= 04.00 products.
DN_SCALE = 1e-4
BOA_ADD_OFFSET_DN = -1000


def processing_baseline_for(acquired: date) -> str:
    """The processing baseline ESA used for scenes sensed on a day (coarse: "03.01" or "04.00")."""
    return "04.00" if acquired >= BASELINE_04_START else "03.01"


def harmonisation_for(baseline: str | None) -> tuple[float, float]:
    """(scale, offset) turning an L2A digital number into surface reflectance (unitless, 0-1).

    ``reflectance = DN * scale + offset``. Unknown baselines are treated as pre-04.00.
    """
    try:
        major = float(baseline) if baseline else 0.0
    except ValueError:
        major = 0.0
    offset = BOA_ADD_OFFSET_DN * DN_SCALE if major >= 4.0 else 0.0
    return DN_SCALE, offset


#: Other names the same band goes by in STAC catalogs (Earth Search uses common names).
BAND_ALIASES: dict[str, tuple[str, ...]] = {
    "B02": ("blue", "b02"),
    "B03": ("green", "b03"),
    "B04": ("red", "b04"),
    "B08": ("nir", "b08", "nir08"),
    "B11": ("swir16", "b11", "swir1"),
    "B12": ("swir22", "b12", "swir2"),
    "SCL": ("scl",),
    "red": ("B04",),
    "green": ("B03",),
    "blue": ("B02",),
    "nir": ("B08",),
}
