"""Turn STAC item dictionaries into :class:`SceneRef` (pure; shared by the local and STAC providers)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

from imagery.errors import CatalogInvalidError
from imagery.providers.base import BandAsset, SceneRef
from imagery.sentinel2 import S2_BANDS, harmonisation_for

logger = logging.getLogger(__name__)

#: Asset roles that never hold pixels we read.
_SKIP_ROLES = {"thumbnail", "overview", "metadata", "visual"}


def parse_datetime_utc(text: str) -> datetime:
    """An RFC 3339 timestamp as a timezone-aware UTC datetime."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _resolve(href: str, base_href: str | None) -> str:
    if base_href is None or href.startswith(("http://", "https://", "/", "file://")):
        return href
    if base_href.startswith(("http://", "https://")):
        return urljoin(base_href, href)
    return os.path.normpath(os.path.join(os.path.dirname(base_href), href))


def scene_ref_from_item(item: Mapping[str, Any], *, provider: str, base_href: str | None = None) -> SceneRef:
    """Build a scene reference from a STAC item dict.

    Band assets come from each data asset: one band per asset (keyed by the asset key), or, when
    the asset lists several ``eo:bands``, one per listed band name sharing the file (VHR RGBN).
    Scale and offset come from ``raster:bands``; Sentinel-2 bands without them get the
    harmonisation of the item's ``s2:processing_baseline``.

    Args:
        item: The item JSON.
        provider: Provider name to record.
        base_href: URL or path of the item file, to resolve relative asset hrefs.

    Raises:
        CatalogInvalidError: no id, datetime, bbox or data assets.
    """
    props: Mapping[str, Any] = item.get("properties") or {}
    item_id = item.get("id")
    when = props.get("datetime") or props.get("start_datetime")
    bbox = item.get("bbox")
    if not isinstance(item_id, str) or not isinstance(when, str) or not isinstance(bbox, list) or len(bbox) < 4:
        raise CatalogInvalidError(f"STAC item {item_id!r} lacks an id, a datetime or a bbox")
    baseline = props.get("s2:processing_baseline")
    baseline = str(baseline) if baseline is not None else None
    assets: dict[str, BandAsset] = {}
    for key, asset in (item.get("assets") or {}).items():
        roles = set(asset.get("roles") or ["data"])
        if roles & _SKIP_ROLES and "data" not in roles:
            continue
        href = _resolve(str(asset.get("href", "")), base_href)
        raster_bands = asset.get("raster:bands") or [{}]
        eo_bands = asset.get("eo:bands") or asset.get("bands") or []
        names = [str(b.get("name") or b.get("common_name") or key) for b in eo_bands] if len(eo_bands) > 1 else [key]
        for i, name in enumerate(names):
            rb = raster_bands[i] if i < len(raster_bands) else {}
            scale, offset = rb.get("scale"), rb.get("offset")
            if scale is None and offset is None and key in S2_BANDS:
                scale, offset = harmonisation_for(baseline)
            assets[name] = BandAsset(
                href=href,
                index=i + 1,
                scale=float(scale if scale is not None else 1.0),
                offset=float(offset if offset is not None else 0.0),
                nodata=rb.get("nodata"),
            )
    if not assets:
        raise CatalogInvalidError(f"STAC item {item_id!r} has no data assets")
    gsd = props.get("gsd")
    cloud = props.get("eo:cloud_cover")
    return SceneRef(
        provider=provider,
        scene_id=item_id,
        acquired_at_utc=parse_datetime_utc(when),
        bbox_wgs84=(float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])),
        cloud_pct=float(cloud) if cloud is not None else None,
        gsd_m=float(gsd) if gsd is not None else None,
        assets=assets,
        processing_baseline=baseline,
        properties=dict(props),
    )


def merge_same_pass(scenes: Sequence[SceneRef], *, max_gap: timedelta = timedelta(minutes=5)) -> list[SceneRef]:
    """Merge items of one satellite pass (tiles of one datatake) into one scene each.

    A site on a tile edge is covered by two or more items of the same pass (adjacent MGRS tiles,
    overlapping by ~10 km); read separately they would count as two dates, each half empty.
    Items are of one pass when they share the platform and relative orbit (when given) and
    were sensed within ``max_gap`` of each other. Sentinel Hub's Process API mosaics them
    server side; this does the same client side: the merged scene reads each pixel from the
    least cloudy tile that has data there.

    Args:
        scenes: Scenes of one provider, any order.
        max_gap: Largest time between consecutive tiles of one pass.

    Returns:
        Scenes oldest first; single items unchanged, merged ones with ``parts`` (least cloudy
        first), the id ``"+"``-joined from the parts' sorted ids, the earliest time, the union
        bbox and the mean of the tiles' cloud covers.
    """

    def key(s: SceneRef) -> tuple[str, str]:
        return (str(s.properties.get("platform") or ""), str(s.properties.get("sat:relative_orbit") or ""))

    ordered = sorted(scenes, key=lambda s: (key(s), s.acquired_at_utc, s.scene_id))
    groups: list[list[SceneRef]] = []
    for scene in ordered:
        last = groups[-1][-1] if groups else None
        if last is not None and key(last) == key(scene) and scene.acquired_at_utc - last.acquired_at_utc <= max_gap:
            groups[-1].append(scene)
        else:
            groups.append([scene])
    merged = [group[0] if len(group) == 1 else _merged(group) for group in groups]
    return sorted(merged, key=lambda s: (s.acquired_at_utc, s.scene_id))


def _merged(group: list[SceneRef]) -> SceneRef:
    parts = tuple(sorted(group, key=lambda s: (s.cloud_pct is None, s.cloud_pct or 0.0, s.scene_id)))
    first = parts[0]
    clouds = [s.cloud_pct for s in parts if s.cloud_pct is not None]
    return SceneRef(
        provider=first.provider,
        scene_id="+".join(sorted(s.scene_id for s in parts)),
        acquired_at_utc=min(s.acquired_at_utc for s in parts),
        bbox_wgs84=(
            min(s.bbox_wgs84[0] for s in parts),
            min(s.bbox_wgs84[1] for s in parts),
            max(s.bbox_wgs84[2] for s in parts),
            max(s.bbox_wgs84[3] for s in parts),
        ),
        cloud_pct=sum(clouds) / len(clouds) if clouds else None,
        gsd_m=first.gsd_m,
        assets=first.assets,
        processing_baseline=first.processing_baseline,
        properties={**first.properties, "sitewatch:tiles": [s.scene_id for s in parts]},
        parts=parts,
    )
