"""Records that cross capability packages (imagery -> jobs -> store, models -> jobs -> store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class SceneRecord:
    """What happened to one scene of one site: used, or skipped with the reason.

    Attributes:
        site_id: The site.
        provider: "local", "stac", "sentinelhub" or "simulated".
        scene_id: The provider's scene (item) id.
        acquired_at_utc: Sensing time, timezone-aware UTC.
        cloud_pct: Cloud and shadow share over the site, 0-100 (None if unknown).
        valid_fraction: Share of the site's pixels usable after masking, 0-1.
        used: Whether the scene enters the datacube.
        reason: Why it was skipped ("" when used).
        meta: Provenance: harmonisation offset/scale, processing baseline, gsd, cache key.
    """

    site_id: str
    provider: str
    scene_id: str
    acquired_at_utc: datetime
    cloud_pct: float | None
    valid_fraction: float
    used: bool
    reason: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
