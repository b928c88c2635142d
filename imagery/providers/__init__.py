"""Imagery sources behind one interface: search scenes over an area, read one onto a grid."""

from imagery.providers.base import BandAsset, SceneProvider, SceneRef

__all__ = ["BandAsset", "SceneProvider", "SceneRef"]
