"""Pre-decoded pairs: one ``.npz`` file per pair, written by ``export_pairs`` from any other layout.

Decoding 13 single-band GeoTIFFs per OSCD date and resampling them onto the 10 m grid costs more
than a training step; an ``npz`` folder holds the result once, needs only numpy to read (a GPU box
without GDAL can train from it), and keeps the source layout's name, bands, grid and licence, so a
checkpoint card trained on it still says which data it saw.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from models.datasets.base import ChangeDataset, ChangePair
from models.errors import DatasetError

logger = logging.getLogger(__name__)


class NpzDataset(ChangeDataset):
    """A folder of ``<name>.npz`` pairs (names may hold ``/``: ``site/20260101.npz``).

    Each file holds ``before``, ``after`` (``(C, H, W)`` float32), ``label`` (``(H, W)`` uint8,
    1 = change) and optionally ``valid`` (``(H, W)`` bool), plus the metadata arrays ``bands``,
    ``gsd_m``, ``source_format`` and ``licence``, which must agree across the folder.
    """

    format = "npz"

    def __init__(self, root: Path, names: list[str] | None = None) -> None:
        """Open the folder.

        Raises:
            DatasetError: Missing folder, no pair, or pairs whose bands or grid differ.
        """
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"npz pair folder not found: {self.root}")
        found = sorted(p.relative_to(self.root).with_suffix("").as_posix() for p in self.root.rglob("*.npz"))
        if names is not None:
            missing = [n for n in names if n not in found]
            if missing:
                raise DatasetError(f"npz pairs not found under {self.root}: {missing}")
            found = list(names)
        if not found:
            raise DatasetError(f"no .npz pair under {self.root}")
        with np.load(self.root / f"{found[0]}.npz") as first:
            bands = tuple(str(b) for b in first["bands"])
            gsd_m = float(first["gsd_m"])
            #: Layout the pairs were exported from (``oscd``, ``levir``, ...).
            self.source_format = str(first["source_format"])
            self.licence = str(first["licence"])
        super().__init__(found, bands, gsd_m)

    def _read(self, name: str) -> ChangePair:
        path = self.root / f"{name}.npz"
        try:
            with np.load(path) as z:
                if tuple(str(b) for b in z["bands"]) != self.bands or float(z["gsd_m"]) != self.gsd_m:
                    raise DatasetError(
                        f"{path}: bands or gsd_m differ from the folder's ({self.bands}, {self.gsd_m} m)"
                    )
                valid = z["valid"].astype(bool) if "valid" in z.files else None
                return ChangePair(
                    name, _unpacked(z, "before"), _unpacked(z, "after"), z["label"].astype(np.uint8), valid
                )
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"{path}: not a readable pair ({exc})") from exc


#: Quantisation steps tried for a lossless copy: 8-bit photos (value / 255) and Sentinel-2 DN / 10000.
_STEPS: tuple[tuple[float, str], ...] = ((1.0 / 255.0, "uint8"), (1e-4, "uint16"))
#: Sentinel-2 L1C and L2A are quantised at 1 / 10000 of reflectance (the product's own quantum).
S2_QUANTUM = 1e-4


def _packed(key: str, image: np.ndarray, round_to: float | None = None) -> dict[str, np.ndarray]:
    """Store ``image`` as unsigned multiples of a step when that is lossless, else as float32.

    Both kinds of shipped input are quantised at the source (photos in 1/255, Sentinel-2 in
    1/10000), so the integer form is a half to a quarter of float32 after compression.
    ``round_to`` allows rounding to that step (e.g. ``S2_QUANTUM`` for bands bilinearly resampled
    from 20 m, whose in-between values carry nothing the sensor measured).
    """
    x = image.astype(np.float64)
    if np.isfinite(x).all():
        steps = [*_STEPS, (round_to, "uint16")] if round_to else list(_STEPS)
        for step, dtype in steps:
            q = np.rint(x / step)
            exact = np.abs(q * step - x).max() < step * 1e-3
            if q.min() >= 0 and q.max() <= np.iinfo(np.dtype(dtype)).max and (exact or step == round_to):
                return {key: q.astype(np.dtype(dtype)), f"{key}_step": np.asarray(step)}
    return {key: image.astype(np.float32)}


def _unpacked(z: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    data = z[key]
    step_key = f"{key}_step"
    if step_key in z.files:
        return (data.astype(np.float64) * float(z[step_key])).astype(np.float32)
    return data.astype(np.float32)


def write_pair_npz(pair: ChangePair, dataset: ChangeDataset, out: Path) -> Path:
    """Write one pair of ``dataset`` as ``out/<pair.name>.npz`` (atomically) and return the path.

    Photos are stored losslessly; Sentinel-2 bands are rounded to the product's 1e-4 reflectance
    quantum (a change of at most 5e-5).
    """
    path = out / f"{pair.name}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    sentinel2 = all(b.upper().startswith("B") for b in dataset.bands)
    round_to = S2_QUANTUM if sentinel2 else None
    arrays: dict[str, np.ndarray] = {
        **_packed("before", pair.before, round_to),
        **_packed("after", pair.after, round_to),
        "label": pair.label.astype(np.uint8),
        "bands": np.asarray(dataset.bands),
        "gsd_m": np.asarray(dataset.gsd_m),
        "source_format": np.asarray(dataset.format),
        "licence": np.asarray(dataset.licence),
    }
    if pair.valid is not None:
        arrays["valid"] = pair.valid.astype(bool)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
