"""Options, grouped by the stage that reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DetectConfig", "TrackConfig", "AnonymizeConfig", "EncodeConfig", "Config"]

Mode = Literal["blur", "pixelate", "solid"]
#: How faces are covered, and how hard the detector looks: the one place these names are spelled.
MODES: tuple[Mode, ...] = ("blur", "pixelate", "solid")
PRESETS = ("fast", "balanced", "thorough")


@dataclass(frozen=True, slots=True)
class DetectConfig:
    #: Minimum BlazeFace score for both models; None keeps each model's own (0.5 short-range,
    #: 0.6 full-range: the scores MediaPipe's graphs use, on which the recall figures were measured).
    threshold: float | None = None
    #: Speed/recall trade-off of the tiled detector: "fast", "balanced" or "thorough".
    preset: str = "balanced"
    #: Smallest face height in pixels to find; None takes the preset's own.
    min_face: int | None = None
    #: Video: seconds over which one full tiled sweep is spread (each frame runs a slice of
    #: it plus a look around known faces). 0 runs the full sweep on every frame. Must stay
    #: below the tracker's hold and look-ahead, which cover a face found this late.
    sweep_period: float = 0.25
    #: Show the detector a dim or off-colour picture (night, stage light) with each channel's
    #: levels stretched (``detect/levels.py``), and an out-of-focus one sharpened
    #: (``detect/focus.py``); the output keeps the original pixels.
    levels: bool = True

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.sweep_period < 0:
            raise ValueError(f"sweep_period must be >= 0 seconds, got {self.sweep_period}")
        if self.min_face is not None and self.min_face < 8:
            raise ValueError(f"min_face must be at least 8 pixels, got {self.min_face}")


#: The default look-ahead's least length, seconds (see :attr:`TrackConfig.ahead`).
LOOKAHEAD = 0.5


@dataclass(frozen=True, slots=True)
class TrackConfig:
    #: Seconds a face stays covered after its last detection.
    hold: float = 0.5
    #: Seconds of frames kept between detection and encoding so that a new track
    #: is also covered in the frames before its first detection (files only); None: see
    #: :attr:`ahead`.
    lookahead: float | None = None
    #: Run the detector on every K-th frame, tracking in between.
    detect_every: int = 1
    #: Move every face's guess with the camera's pan, tilt and zoom (``camera.py``), measured on
    #: each frame of a file and between two looks live.
    follow_camera: bool = True

    @property
    def ahead(self) -> float:
        """The look-ahead in seconds: ``lookahead``, or by default as long as the hold and at least
        0.5 s. Shorter than the hold, a face found again cannot be covered along its path in the
        held frames, and an unseen face's cover grows as fast as live: hold 0.75 s with 0.5 s of
        look-ahead blurred 6.4x the real clips' faces' area around them, 2.9x with 0.75 s."""
        return max(self.hold, LOOKAHEAD) if self.lookahead is None else self.lookahead

    def __post_init__(self) -> None:
        if self.hold < 0:
            raise ValueError(f"hold must be >= 0 seconds, got {self.hold}")
        if self.lookahead is not None and self.lookahead < 0:
            raise ValueError(f"lookahead must be >= 0 seconds, got {self.lookahead}")
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every}")


@dataclass(frozen=True, slots=True)
class AnonymizeConfig:
    mode: Mode = "blur"
    #: Multiplier on the size-relative blur sigma / pixel block size (1.0 = default).
    strength: float = 1.0
    #: How far the covered ellipse extends beyond the detector's face box, as a
    #: fraction of its size. 0.5 covers hair, ears and chin on a frontal face.
    margin: float = 0.5
    #: Draw the covered regions' outlines (for checking a result).
    boxes: bool = False
    #: Gaps between covered heads too narrow for a disk of this radius, in heights of the faces
    #: around it, are covered too (0.5: a gap narrower than a face): a face half hidden in a
    #: crowd, between found ones (see ``gaps.py``). 0 turns it off.
    gaps: float = 0.5
    #: The same with a wider disk around a face in a crowd (four other people's faces within
    #: three face heights: a stand, an audience), where a hole in the cover that no disk of this
    #: radius fits in is a face the detector missed among found ones (``gaps.py``; in a photo,
    #: only where three people were found sure). A value of at most ``gaps`` turns it off.
    crowd_gaps: float = 1.5

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be blur, pixelate or solid, got {self.mode!r}")
        if self.strength <= 0:
            raise ValueError(f"strength must be > 0, got {self.strength}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")
        if self.gaps < 0:
            raise ValueError(f"gaps must be >= 0, got {self.gaps}")
        if self.crowd_gaps < 0:
            raise ValueError(f"crowd_gaps must be >= 0, got {self.crowd_gaps}")


@dataclass(frozen=True, slots=True)
class EncodeConfig:
    #: x264 constant rate factor: 18-20 is visually lossless for most footage.
    crf: int = 20
    #: x264 preset; "veryfast" keeps encoding from dominating the run time.
    preset: str = "veryfast"
    #: Keep container/stream metadata (GPS, device, dates), chapter titles and subtitles. Off by
    #: default: they can identify people and places.
    keep_metadata: bool = False
    #: Encoder and decoder threads each; 0 lets libav choose (1.5 per core). Two: the detector, not
    #: the codecs, sets the pace (x264 veryfast does 1080p at ~60 fps on two threads, streamguard
    #: ~6-10), and each thread more holds frames in flight: 25 MB at 1080p from libav's 3 to 2.
    threads: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be between 0 and 51, got {self.crf}")


@dataclass(frozen=True, slots=True)
class Config:
    detect: DetectConfig = field(default_factory=DetectConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    anonymize: AnonymizeConfig = field(default_factory=AnonymizeConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
