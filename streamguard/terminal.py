"""What the files command line shows on a terminal: a progress bar, and library warnings as lines.

rich is imported only when a bar is shown, so a quiet or piped run never loads it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["ProgressBar", "setup_logging"]


def _fps_column_class() -> type:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class FpsColumn(ProgressColumn):
        def render(self, task: object) -> Text:
            speed = getattr(task, "speed", None)
            return Text(f"{speed:5.1f} fps" if speed else "  ... fps")

    return FpsColumn


class ProgressBar:
    """A rich progress bar with fps and ETA on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled
        self.label = label
        self._bar: Any = None
        self._task: Any = None

    def start(self, total: int | None) -> None:
        if not self.enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        _FpsColumn = _fps_column_class()
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            _FpsColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=total)

    def update(self, done: int, total: int | None = None) -> None:
        if self._bar is not None:
            if total is not None:
                self._bar.update(self._task, completed=done, total=total)
            else:
                self._bar.update(self._task, completed=done)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time, not the stream it was made with: a
    library caller (or a test) may replace stderr after ``main`` returned."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup_logging(quiet: bool) -> None:
    """Library warnings go to stderr as 'streamguard: ...' lines (our handler, not the root's)."""
    logger = logging.getLogger("streamguard")
    for h in [h for h in logger.handlers if getattr(h, "_streamguard_cli", False)]:
        logger.removeHandler(h)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("streamguard: %(message)s"))
    handler._streamguard_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR if quiet else logging.WARNING)
    logger.propagate = False
