"""Errors raised while finding, reading, masking and caching imagery.

Every leaf also subclasses the builtin that fits, as rasterio's errors do, so callers that
only know the builtin (``except OSError``) still catch them.
"""

from __future__ import annotations


class ImageryError(Exception):
    """Root of all imagery errors."""


class SceneUnavailableError(ImageryError, OSError):
    """A scene (or one of its files) could not be fetched: missing file, timeout, server error."""


class SceneCorruptError(ImageryError, OSError):
    """A scene file exists but cannot be decoded: truncated or invalid GeoTIFF, no CRS."""


class MissingBandError(ImageryError, LookupError):
    """A requested band is not among the scene's assets."""


class NoOverlapError(ImageryError, ValueError):
    """A scene does not cover any pixel of the requested grid."""


class ProviderAuthError(ImageryError, PermissionError):
    """The provider refused the credentials (HTTP 401/403)."""


class ProviderUnavailableError(ImageryError, ConnectionError):
    """A search could not be answered: the service timed out or kept failing after retries."""


class CatalogInvalidError(ImageryError, ValueError):
    """A STAC catalog or item is malformed (missing datetime, bbox or assets)."""
