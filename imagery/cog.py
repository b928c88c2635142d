"""Atomic writers for Cloud-Optimized GeoTIFFs and small text files.

A file is written under a hidden temporary name in its final directory, flushed to disk
(``fsync``) and renamed over the final name, so a reader never sees a half-written file and a
crash leaves at most a ``.*.tmp`` orphan that no reader globs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rasterio

from geo import Grid

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success fsync it and rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_cog(
    path: Path,
    data: npt.NDArray[np.generic],
    grid: Grid,
    *,
    nodata: float | None = None,
    band_names: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
    categorical: bool = False,
) -> Path:
    """Write an array as a Cloud-Optimized GeoTIFF on a grid, atomically.

    Args:
        path: Destination file.
        data: (band, y, x) or (y, x) array whose (y, x) shape is ``grid.shape``.
        grid: Georeferencing (CRS and transform).
        nodata: Nodata value stored in the file (NaN allowed for floats).
        band_names: One description per band (read back by :func:`band_names_of`).
        tags: Dataset-level metadata tags.
        categorical: Overviews by nearest neighbour (class layers) rather than averaging.

    Returns:
        ``path``.
    """
    arr = data[None] if data.ndim == 2 else data
    if arr.shape[1:] != grid.shape:
        raise ValueError(f"array shape {arr.shape[1:]} does not match grid shape {grid.shape}")
    floating = np.issubdtype(arr.dtype, np.floating)
    profile: dict[str, object] = {
        "driver": "COG",
        "width": grid.width,
        "height": grid.height,
        "count": arr.shape[0],
        "dtype": arr.dtype.name,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": nodata,
        "compress": "deflate",
        "predictor": "3" if floating else "2",
        "blocksize": 256,
        "overview_resampling": "nearest" if categorical else "average",
        "bigtiff": "if_safer",
    }
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(arr)
            if band_names is not None:
                for i, name in enumerate(band_names, start=1):
                    dst.set_band_description(i, name)
            if tags:
                dst.update_tags(**tags)
    return path
