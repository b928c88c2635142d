"""The time zone a site keeps, so that daily features count the site's own calendar days (pure).

A crane that works 06:00-18:00 in Brisbane (UTC+10) works across two UTC days; a "day" of
site activity must be the site's local day. Where the zone comes from, in order:

1. ``properties["timezone"]`` of the site: an IANA name (``"Europe/Berlin"``). Use it whenever
   the rule below can be wrong: near a zone border or in a country whose zones follow states.
2. The country of ``region`` (ISO 3166-2, ``"DE-BY"``) in the IANA ``zone.tab`` table shipped
   with the time zone database: its only zone, or, for a country with several, the zone whose
   reference city is nearest the site's centroid (``Australia/Brisbane`` for a site near
   Brisbane, ``America/Sao_Paulo`` for Campinas). No dependency beyond the database that
   ``zoneinfo`` reads anyway.
3. Otherwise the nautical zone of the centroid's longitude (UTC offset ``round(lon / 15)`` hours,
   no daylight saving time), with a warning: right to within an hour or two.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import math
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, timedelta, timezone, tzinfo
from pathlib import Path

from aoi.model import Site
from iot.errors import SiteTimezoneError

logger = logging.getLogger(__name__)

#: The site property that names the zone explicitly.
TIMEZONE_PROPERTY = "timezone"

_COORD = re.compile(r"^([+-])(\d{2})(\d{2})(\d{2})?([+-])(\d{3})(\d{2})(\d{2})?$")


@dataclass(frozen=True, slots=True)
class _ZoneRef:
    name: str
    lat: float
    lon: float


def _degrees(sign: str, deg: str, minutes: str, seconds: str | None) -> float:
    value = int(deg) + int(minutes) / 60 + (int(seconds) / 3600 if seconds else 0.0)
    return -value if sign == "-" else value


def _zone_tab_text() -> str | None:
    """``zone.tab`` from the system database (``zoneinfo.TZPATH``) or the ``tzdata`` package."""
    for root in zoneinfo.TZPATH:
        path = Path(root) / "zone.tab"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    try:
        return importlib.resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return None


@functools.cache
def zones_by_country() -> dict[str, tuple[_ZoneRef, ...]]:
    """Zones of each ISO 3166-1 alpha-2 country, with their reference coordinates (IANA ``zone.tab``)."""
    text = _zone_tab_text()
    if text is None:
        logger.warning("no zone.tab in the time zone database: site zones fall back to longitude")
        return {}
    out: dict[str, list[_ZoneRef]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        cells = line.split("\t")
        if len(cells) < 3 or not (m := _COORD.match(cells[1])):
            continue
        lat = _degrees(m[1], m[2], m[3], m[4])
        lon = _degrees(m[5], m[6], m[7], m[8])
        out.setdefault(cells[0], []).append(_ZoneRef(cells[2], lat, lon))
    return {country: tuple(zones) for country, zones in out.items()}


def _distance_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Central angle between two points (degrees); only compared, never reported."""
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    cos_angle = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.acos(max(-1.0, min(1.0, cos_angle))))


def nautical_zone(lon: float) -> tzinfo:
    """The fixed-offset zone of a longitude (degrees east): UTC+round(lon/15) h, no DST."""
    hours = max(-12, min(12, round(lon / 15)))
    return UTC if hours == 0 else timezone(timedelta(hours=hours), f"UTC{hours:+03d}:00")


def site_timezone(site: Site) -> tzinfo:
    """The time zone whose calendar days are the site's days (see the module docstring).

    Raises:
        SiteTimezoneError: ``properties.timezone`` is not a string naming an IANA zone.
    """
    named = site.properties.get(TIMEZONE_PROPERTY)
    if named is not None:
        if not isinstance(named, str) or not named.strip():
            raise SiteTimezoneError(site.id, f"must be an IANA zone name such as 'Europe/Berlin', not {named!r}")
        try:
            return zoneinfo.ZoneInfo(named.strip())
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SiteTimezoneError(site.id, f"{named!r} is not a zone in the time zone database") from None
    centroid = site.boundary_wgs84.centroid
    lon, lat = float(centroid.x), float(centroid.y)
    country = site.region.split("-", 1)[0].upper()
    zones = zones_by_country().get(country, ())
    if zones:
        best = min(zones, key=lambda z: _distance_deg(lat, lon, z.lat, z.lon))
        try:
            return zoneinfo.ZoneInfo(best.name)
        except zoneinfo.ZoneInfoNotFoundError:  # zone.tab without the zone files: fall through
            pass
    zone = nautical_zone(lon)
    logger.warning(
        "site %s: no time zone for region %r; using %s from its longitude (set properties.timezone)",
        site.id,
        site.region,
        zone,
        extra={"site_id": site.id},
    )
    return zone
