"""streamguard: offline face anonymizer for video files, photos and live cameras.

The library API::

    from streamguard import anonymize_file, Config
    anonymize_file("clip.mp4", "clip.anonymized.mp4")
"""

__version__ = "0.1.0"

from .api import anonymize_file, anonymize_image, anonymize_video, build_stages, default_output
from .config import AnonymizeConfig, Config, DetectConfig, EncodeConfig, TrackConfig
from .errors import Cancelled, DeviceError, InputError, ModelError, OutputError, StreamguardError
from .types import Box, Detection, Frame, Region, Stage

__all__ = [
    "__version__",
    "anonymize_file",
    "anonymize_image",
    "anonymize_video",
    "build_stages",
    "default_output",
    "Config",
    "DetectConfig",
    "TrackConfig",
    "AnonymizeConfig",
    "EncodeConfig",
    "StreamguardError",
    "InputError",
    "OutputError",
    "ModelError",
    "DeviceError",
    "Cancelled",
    "Box",
    "Detection",
    "Region",
    "Frame",
    "Stage",
]
