"""Evidence packs for a credit committee: every figure, the scenes and checkpoint behind it, pictures.

A pack is a folder:

    manifest.json        scenes used and skipped, checkpoint and thresholds, the figures,
                         the inputs' sha256 and the command that reproduces the pack
    before.png           true colour of the pre-construction baseline
    after.png            true colour of the newest scene with an estimate
    change.png           the change mask over the newest scene
    change.tif           the change probability as a Cloud-Optimized GeoTIFF on the site grid
    progress.csv         the curve: planned, observed and its band per date

The manifest holds nothing that depends on when the pack was written, so the same inputs
give the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image
from rasterio.io import MemoryFile

from aoi.model import Site, is_groundwork
from imagery.render import change_overlay, truecolor
from jobs.progress import SiteProgress
from models.estimate import S2_STAGE_BANDS
from store.progress_repo import inputs_digest, summary_to_json

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # evidence is meant to be shared (mkstemp creates 0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _png(rgb: npt.NDArray[np.uint8]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _rgb(image: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    idx = {b: k for k, b in enumerate(S2_STAGE_BANDS)}
    return truecolor(image[idx["B04"]], image[idx["B03"]], image[idx["B02"]])


def _change_cog(result: SiteProgress, probability: npt.NDArray[np.float32]) -> bytes:
    profile = {
        "driver": "GTiff",
        "width": result.grid.width,
        "height": result.grid.height,
        "count": 1,
        "dtype": "float32",
        "crs": result.grid.crs,
        "transform": result.grid.transform,
        "nodata": float("nan"),
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(probability.astype(np.float32), 1)
            dst.update_tags(threshold=str(result.threshold), scene=str(result.latest_scene))
        with mem.open() as src, MemoryFile() as out:
            cog_profile = {**src.profile, "driver": "COG", "compress": "deflate"}
            with out.open(**cog_profile) as cog:
                cog.write(src.read())
                cog.update_tags(**src.tags())
            return bytes(out.read())


def evidence_manifest(site: Site, result: SiteProgress, *, command: str) -> dict[str, Any]:
    """The manifest of an evidence pack (pure: same inputs, same document)."""
    footprint_scenes: list[dict[str, Any]] = []
    for r in result.records:
        footprint_scenes.append(
            {
                "scene_id": r.scene_id,
                "provider": r.provider,
                "acquired_at_utc": r.acquired_at_utc.isoformat(),
                "cloud_pct": None if r.cloud_pct is None else round(r.cloud_pct, 2),
                "valid_fraction_over_footprints": round(r.valid_fraction, 4),
                "used": r.used,
                "reason": r.reason,
                "harmonisation": {k: r.meta[k] for k in ("offset", "scale", "processing_baseline") if k in r.meta},
            }
        )
    estimates = {
        o.scene_id: {"percent": o.percent, "observed_fraction": round(o.observed_fraction, 4), "reason": o.reason}
        for o in result.observations
    }
    for s in footprint_scenes:
        s["estimate"] = estimates.get(s["scene_id"])
    return {
        "manifest_version": MANIFEST_VERSION,
        "site": {"id": site.id, "name": site.name, "loan_id": site.loan_id, "region": site.region},
        "plan": {
            "start": site.plan.start.isoformat(),
            "end": site.plan.end.isoformat(),
            "phases": [
                {
                    "name": p.name,
                    "weight": p.weight,
                    "start": p.start.isoformat(),
                    "end": p.end.isoformat(),
                    "groundwork": is_groundwork(site.plan, k),
                }
                for k, p in enumerate(site.plan.phases)
            ],
        },
        "figures": summary_to_json(result.summary),
        "method": result.summary.method,
        "provenance": result.inputs.get("provenance", {}),
        "threshold": result.threshold,
        "baseline_scenes": result.baseline_scenes,
        "latest_scene": result.latest_scene,
        "scenes": footprint_scenes,
        # The sensor days the stall flag read: [site-local day, work level (1 = usual, 0 = idle)].
        "site_work": result.inputs.get("site_work", []),
        "idle_since": result.inputs.get("idle_since"),
        "work_ended": result.inputs.get("work_ended"),
        "inputs_sha256": inputs_digest(result.inputs),
        "files": ["before.png", "after.png", "change.png", "change.tif", "progress.csv"],
        "reproduce": command,
    }


def write_evidence(site: Site, result: SiteProgress, out_dir: Path, *, command: str) -> Path:
    """Write an evidence pack for one site's progress run into ``out_dir``; returns the manifest path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = evidence_manifest(site, result, command=command)
    if result.baseline is not None:
        _atomic_write(out_dir / "before.png", _png(_rgb(result.baseline)))
    if result.latest_image is not None and result.latest_change is not None:
        after = _rgb(result.latest_image)
        _atomic_write(out_dir / "after.png", _png(after))
        overlay = change_overlay(result.latest_change, result.threshold)
        alpha = overlay[..., 3:4].astype(np.float32) / 255.0
        blended = (after * (1 - alpha) + overlay[..., :3] * alpha).astype(np.uint8)
        _atomic_write(out_dir / "change.png", _png(blended))
        _atomic_write(out_dir / "change.tif", _change_cog(result, result.latest_change))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["date", "planned_pct", "observed_pct", "lower_pct", "upper_pct"])
    for p in result.points:
        row = asdict(p)
        w.writerow([row["on"].isoformat() if isinstance(row["on"], date) else row["on"], *list(row.values())[1:]])
    _atomic_write(out_dir / "progress.csv", buf.getvalue().encode())
    path = out_dir / "manifest.json"
    _atomic_write(path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    logger.info("evidence written to %s", out_dir, extra={"site_id": site.id})
    return path
