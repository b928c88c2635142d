"""The one interface every labelled change data set follows."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

#: The Sentinel-2 bands SiteWatch imagery delivers (10 m and 20 m), in channel order.
S2_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08", "B11", "B12")
#: All 13 Sentinel-2 L1C bands.
S2_ALL_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
#: Channel names of three-band very-high-resolution photos, in channel order.
RGB_BANDS: tuple[str, ...] = ("red", "green", "blue")


@dataclass(frozen=True, slots=True)
class ChangePair:
    """One labelled bitemporal pair on one pixel grid.

    Attributes:
        name: Identifier within its data set (city, tile or folder name).
        before: ``(C, H, W)`` float32 reflectance in [0, ~1] at date 1 (photos: value / 255).
        after: ``(C, H, W)`` float32 at date 2, same grid.
        label: ``(H, W)`` uint8, 1 = change, 0 = no change.
        valid: ``(H, W)`` bool, False where a pixel must not be scored (cloud, unlabelled); None = all valid.
    """

    name: str
    before: npt.NDArray[np.float32]
    after: npt.NDArray[np.float32]
    label: npt.NDArray[np.uint8]
    valid: npt.NDArray[np.bool_] | None = None

    def as_tuple(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
        """``(before, after, label)``."""
        return self.before, self.after, self.label


class ChangeDataset:
    """A folder of labelled pairs, read lazily one pair at a time.

    Subclasses set the class attributes and implement ``names`` discovery and ``_read``.
    """

    #: Short format name (``oscd``, ``levir``, ``dsifn``, ``sztaki``, ``sim``).
    format: str = ""
    #: Licence of the labels, as stated in the data's provenance.
    licence: str = ""

    def __init__(self, names: list[str], bands: tuple[str, ...], gsd_m: float) -> None:
        #: Pair names in a stable (sorted) order.
        self.names = names
        #: Channel names, in order.
        self.bands = bands
        #: Ground sample distance of the pixel grid, metres.
        self.gsd_m = gsd_m

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> ChangePair:
        return self._read(self.names[index])

    def __iter__(self) -> Iterator[ChangePair]:
        for name in self.names:
            yield self._read(name)

    def pair(self, name: str) -> ChangePair:
        """Read a pair by name.

        Raises:
            KeyError: No such pair.
        """
        if name not in self.names:
            raise KeyError(f"no pair {name!r} in {self.format} data set; have: {', '.join(self.names)}")
        return self._read(name)

    def _read(self, name: str) -> ChangePair:
        raise NotImplementedError
