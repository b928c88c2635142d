"""Type aliases shared across packages."""

from typing import TypeAlias

#: (minx, miny, maxx, maxy) in the CRS stated by the caller.
BBox: TypeAlias = tuple[float, float, float, float]
