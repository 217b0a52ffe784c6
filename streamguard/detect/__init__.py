"""Finding faces: one BlazeFace model (``blazeface``, ``base``), the multi-scale tile plan that
finds small, tilted and turned faces with it (``plan``, ``canvas``, ``fuse``, ``tiling``), its
photo plan run in several views (``still``), the sweep that spreads that plan over a video's
frames (``sweep``), and the pipeline stages (``stage``)."""

from .base import BlazeFaceDetector, FaceDetector, detect_upright
from .plan import PRESETS, Level, Preset, Tile, TileKey
from .stage import DetectionsToRegions, DetectStage, create_detector
from .still import StillDetector
from .sweep import SweepDetectStage
from .tiling import TiledDetector

__all__ = ["BlazeFaceDetector", "FaceDetector", "detect_upright", "PRESETS", "Level", "Preset", "Tile",
           "TileKey", "DetectionsToRegions", "DetectStage", "create_detector", "SweepDetectStage",
           "StillDetector", "TiledDetector"]
