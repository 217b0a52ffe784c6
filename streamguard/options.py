"""Command-line options shared by the front ends that anonymize: files, ``serve`` and ``live``.

The anonymization and tracking options are defined once here (:func:`add_anonymize_options`)
and read back into a :class:`~streamguard.config.Config` by :func:`config_from_args`, so every
front end spells them, checks them and defaults them the same way. The argparse types for
numbers, seconds and counts live here too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .config import MODES, PRESETS, AnonymizeConfig, Config, DetectConfig, EncodeConfig, TrackConfig
from .errors import UsageError

__all__ = [
    "DEFAULTS",
    "add_anonymize_options",
    "at_least_one",
    "config_from_args",
    "float_option",
    "non_negative_float",
    "positive_float",
    "positive_seconds",
    "seconds",
    "unit_float",
]

#: Slotted dataclasses hide their defaults on the class; read them off an instance.
DEFAULTS = Config()


def float_option(low: float, high: float = float("inf"), *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type for a number in [low, high) (or (low, high) with ``low_open``)."""

    def parse(text: str) -> float:
        v = float(text)
        if v < low or (low_open and v == low) or v >= high:
            left = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"must be in {left}{low:g}, {high:g}), got {text}")
        return v

    return parse


positive_float = float_option(0.0, low_open=True)
non_negative_float = float_option(0.0)
unit_float = float_option(0.0, 1.0, low_open=True)


def seconds(text: str) -> float:
    """An argparse type for a finite number of seconds >= 0."""
    v = float(text)
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return v


def positive_seconds(text: str) -> float:
    """An argparse type for a finite number of seconds > 0."""
    v = seconds(text)
    if v == 0:
        raise argparse.ArgumentTypeError("must be > 0 seconds")
    return v


def at_least_one(text: str) -> int:
    """An argparse type for a count: a whole number >= 1."""
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return v


def _one_of(names: tuple[str, ...], default: str) -> str:
    """``("a", "b", "c"), "b"`` -> ``"a, b (default) or c"``, for help texts."""
    shown = [f"{n} (default)" if n == default else n for n in names]
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def add_anonymize_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every front end that anonymizes (files, serve, live)."""
    g = p.add_argument_group("anonymization")
    g.add_argument("--mode", choices=MODES, default=DEFAULTS.anonymize.mode, help="how faces are covered")
    g.add_argument(
        "--strength",
        type=positive_float,
        default=DEFAULTS.anonymize.strength,
        help="blur/pixelation strength, relative to face size",
    )
    g.add_argument(
        "--margin",
        type=non_negative_float,
        default=DEFAULTS.anonymize.margin,
        help="extra cover around the detected face box, as a fraction of its size (default 0.5: whole head)",
    )
    g.add_argument(
        "--threshold",
        type=unit_float,
        default=DEFAULTS.detect.threshold,
        help="detector confidence threshold, 0-1 (default: video 0.5 short-range and 0.6 full-range, "
        "photos 0.35 and 0.45); lower finds more faces and blurs more that are not",
    )
    g.add_argument("--boxes", action="store_true", help="draw outlines of the covered regions")
    g.add_argument(
        "--detection",
        choices=PRESETS,
        default=DEFAULTS.detect.preset,
        help=f"how hard to look for small faces: {_one_of(PRESETS, DEFAULTS.detect.preset)}",
    )
    g.add_argument(
        "--min-face",
        type=int,
        metavar="PX",
        help="smallest face height to find, in pixels (default: the --detection preset's)",
    )
    g.add_argument(
        "--no-levels",
        dest="levels",
        action="store_false",
        help="show the detector dim, tinted or out-of-focus pictures as they are (default: each "
        "colour's levels stretched first, and a soft picture sharpened, which finds more faces at "
        "night, under coloured light and out of focus)",
    )
    t = p.add_argument_group("tracking")
    t.add_argument(
        "--hold",
        type=non_negative_float,
        default=DEFAULTS.track.hold,
        help="seconds a face stays covered after its last detection (default 0.5; in a file, a longer"
        " hold also covers faces as long before they are first found)",
    )
    t.add_argument(
        "--detect-every",
        type=int,
        default=DEFAULTS.track.detect_every,
        metavar="K",
        help="run the detector on every K-th frame (default 1)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    """The :class:`Config` the parsed options ask for; :class:`UsageError` if they contradict it.

    The encoding options are read only where the parser has them (the files front end).
    """
    try:
        return Config(
            detect=DetectConfig(threshold=args.threshold, preset=args.detection, min_face=args.min_face,
                                levels=args.levels),
            track=TrackConfig(hold=args.hold, detect_every=args.detect_every),
            anonymize=AnonymizeConfig(
                mode=args.mode, strength=args.strength, margin=args.margin, boxes=args.boxes
            ),
            encode=EncodeConfig(
                crf=getattr(args, "crf", DEFAULTS.encode.crf),
                preset=getattr(args, "preset", DEFAULTS.encode.preset),
                keep_metadata=getattr(args, "keep_metadata", False),
            ),
        )
    except ValueError as e:
        raise UsageError(str(e)) from e
