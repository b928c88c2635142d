"""Write a simulated local archive: a static STAC catalog of COGs per site, plus the truth.

Layout under the archive root (the model engineer relies on it)::

    catalog.json                                   static, self-contained STAC catalog
    <site_id>/collection.json
    <site_id>/<scene_id>/<scene_id>.json           STAC item
    <site_id>/<scene_id>/{B02,B03,B04,B08,B11,B12,SCL}.tif   COGs on the site grid
    truth/<site_id>/progress.csv                   date, percent, phase_0, phase_1, ...
    truth/<site_id>/change_<YYYYMMDD>.tif          uint8 0/1 new construction vs pre-construction
    truth/<site_id>/footprints.tif                 uint8 0 outside, k + 1 inside phase k

Every file is written atomically (temporary name, fsync, rename).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from pystac.stac_io import DefaultStacIO
from shapely.geometry import box, mapping

from aoi.model import Site
from geo import Grid
from imagery.cog import write_cog, write_text_atomic
from imagery.sentinel2 import S2_BANDS, S2_CENTER_UM, harmonisation_for
from imagery.simulate import SimulatedScene, SimulationOptions, footprint_labels, simulate_scenes, site_grid

logger = logging.getLogger(__name__)

EO_SCHEMA = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
PROJ_SCHEMA = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
RASTER_SCHEMA = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"

_COMMON_NAMES = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B11": "swir16", "B12": "swir22"}


class _AtomicStacIO(DefaultStacIO):
    """pystac I/O whose every JSON write is atomic."""

    def write_text_to_href(self, href: str, txt: str) -> None:
        write_text_atomic(Path(href), txt)


@dataclass(slots=True)
class SiteArchiveSummary:
    """What was written for one site."""

    site_id: str
    grid: Grid
    scenes: int = 0
    files: int = 0
    scene_ids: list[str] = field(default_factory=list)


def write_site_archive(
    root: Path,
    site: Site,
    start: date,
    end: date,
    *,
    seed: int,
    options: SimulationOptions | None = None,
    on_scene: Callable[[SimulatedScene], None] | None = None,
) -> tuple[SiteArchiveSummary, pystac.Collection]:
    """Simulate one site and write its COGs and truth; return the (unsaved) STAC collection.

    Args:
        root: Archive root directory.
        site: The site.
        start: First day (inclusive).
        end: Last day (inclusive).
        seed: Simulator seed.
        options: Simulator knobs.
        on_scene: Called after each scene is written (progress bars).
    """
    grid = site_grid(site)
    summary = SiteArchiveSummary(site.id, grid)
    site_dir = root / site.id
    truth_dir = root / "truth" / site.id
    write_cog(truth_dir / "footprints.tif", footprint_labels(site, grid), grid, categorical=True)
    summary.files += 1

    items: list[pystac.Item] = []
    rows: list[list[str]] = []
    for scene in simulate_scenes(site, start, end, seed=seed, grid=grid, options=options):
        scene_dir = site_dir / scene.scene_id
        for band in S2_BANDS:
            write_cog(scene_dir / f"{band}.tif", scene.dn[band], grid, nodata=0)
        write_cog(scene_dir / "SCL.tif", scene.scl, grid, nodata=0, categorical=True)
        day = scene.acquired_at_utc.date()
        write_cog(truth_dir / f"change_{day:%Y%m%d}.tif", scene.change.astype(np.uint8), grid, categorical=True)
        summary.files += len(S2_BANDS) + 2
        items.append(_item(scene, grid, scene_dir))
        rows.append([day.isoformat(), f"{scene.true_percent:.3f}", *(f"{f:.4f}" for f in scene.phase_fractions)])
        summary.scenes += 1
        summary.scene_ids.append(scene.scene_id)
        if on_scene is not None:
            on_scene(scene)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["date", "percent", *(f"phase_{k}" for k in range(len(site.plan.phases)))])
    writer.writerows(rows)
    write_text_atomic(truth_dir / "progress.csv", buf.getvalue())
    summary.files += 1

    bbox = list(grid.bbox_wgs84)
    times = [it.datetime for it in items if it.datetime is not None]
    collection = pystac.Collection(
        id=site.id,
        description=f"Simulated Sentinel-2 L2A scenes over {site.name} ({site.id}) on its 10 m UTM grid",
        extent=pystac.Extent(
            pystac.SpatialExtent([bbox]),
            pystac.TemporalExtent([[min(times) if times else None, max(times) if times else None]]),
        ),
        license="proprietary",
        extra_fields={"sitewatch:grid": grid.to_dict(), "sitewatch:seed": seed},
    )
    collection.add_items(items)
    return summary, collection


def _item(scene: SimulatedScene, grid: Grid, scene_dir: Path) -> pystac.Item:
    bbox = grid.bbox_wgs84
    scale, offset = harmonisation_for(scene.processing_baseline)
    epsg = int(grid.crs.split(":")[1])
    props: dict[str, Any] = {
        "platform": scene.platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "gsd": grid.resolution_m,
        "eo:cloud_cover": round(scene.cloud_pct, 2),
        "proj:epsg": epsg,
        "proj:shape": [grid.height, grid.width],
        "proj:transform": list(grid.transform)[:6],
        "s2:processing_baseline": scene.processing_baseline,
        "s2:boa_add_offset_dn": -scene.offset_dn,
        "sitewatch:simulated": True,
    }
    item = pystac.Item(
        id=scene.scene_id,
        geometry=mapping(box(*bbox)),
        bbox=list(bbox),
        datetime=scene.acquired_at_utc.astimezone(UTC),
        properties=props,
        stac_extensions=[EO_SCHEMA, PROJ_SCHEMA, RASTER_SCHEMA],
    )
    for band in S2_BANDS:
        item.add_asset(
            band,
            pystac.Asset(
                href=str(scene_dir / f"{band}.tif"),
                media_type=pystac.MediaType.COG,
                roles=["data", "reflectance"],
                extra_fields={
                    "eo:bands": [
                        {"name": band, "common_name": _COMMON_NAMES[band], "center_wavelength": S2_CENTER_UM[band]}
                    ],
                    "raster:bands": [
                        {
                            "data_type": "uint16",
                            "nodata": 0,
                            "scale": scale,
                            "offset": round(offset, 6),
                            "spatial_resolution": 10,
                        }
                    ],
                },
            ),
        )
    item.add_asset(
        "SCL",
        pystac.Asset(
            href=str(scene_dir / "SCL.tif"),
            media_type=pystac.MediaType.COG,
            roles=["data"],
            title="Scene classification (ESA L2A classes)",
            extra_fields={"raster:bands": [{"data_type": "uint8", "nodata": 0, "spatial_resolution": 10}]},
        ),
    )
    return item


def save_catalog(root: Path, collections: Sequence[pystac.Collection]) -> Path:
    """Add (or replace) collections in the static catalog at ``root/catalog.json`` and save it atomically."""
    path = root / "catalog.json"
    if path.exists():
        catalog = pystac.Catalog.from_file(str(path))
        for col in collections:
            if catalog.get_child(col.id) is not None:
                catalog.remove_child(col.id)
    else:
        catalog = pystac.Catalog(id="sitewatch-archive", description="SiteWatch local imagery archive")
    for col in collections:
        catalog.add_child(col)
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED, stac_io=_AtomicStacIO())
    return path


def write_archive(
    root: Path,
    sites: Sequence[Site],
    start: date,
    end: date,
    *,
    seed: int,
    options: SimulationOptions | None = None,
    on_scene: Callable[[SimulatedScene], None] | None = None,
) -> list[SiteArchiveSummary]:
    """Simulate every site into a local archive (COGs, STAC catalog and truth) under ``root``.

    Returns:
        One summary per site, in input order.
    """
    root.mkdir(parents=True, exist_ok=True)
    summaries: list[SiteArchiveSummary] = []
    collections: list[pystac.Collection] = []
    for site in sites:
        summary, col = write_site_archive(root, site, start, end, seed=seed, options=options, on_scene=on_scene)
        summaries.append(summary)
        collections.append(col)
        logger.info("simulated %d scenes", summary.scenes, extra={"site_id": site.id})
    save_catalog(root, collections)
    return summaries
