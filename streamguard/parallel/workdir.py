"""The resumable work folder of a chunked video: chunk files and the manifest that records them.

``.<output name>.streamguard-chunks/`` beside the output holds each chunk file, renamed into
place only when complete, and a manifest that lets an interrupted run skip the chunks it
finished; the folder is removed once the joined file is in place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config
from ..errors import OutputError
from .chunks import ChunkPlan, ChunkResult

__all__ = ["WorkDir", "config_key", "work_dir_for"]

#: Chunk files are MP4 whatever the output: it keeps any time base and the encoder's dts exactly.
CHUNK_SUFFIX = ".mp4"
MANIFEST_VERSION = 1


def config_key(config: Config, output: Path) -> str:
    """What the chunk files depend on: every option but thread counts, the output's suffix and version."""
    data = dataclasses.asdict(
        dataclasses.replace(config, encode=dataclasses.replace(config.encode, threads=0))
    )
    data["suffix"] = output.suffix.lower()
    data["version"] = __version__
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def work_dir_for(output: str | os.PathLike[str]) -> Path:
    out = Path(output)
    return out.with_name(f".{out.name}.streamguard-chunks")


def _input_identity(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


class WorkDir:
    """``.<output name>.streamguard-chunks/`` beside the output: chunk files and ``manifest.json``.

    The manifest records the input (path, size, mtime), the options' key, the chunk plan and the
    chunks finished so far. A later run with the same input and options resumes from it; anything
    else starts the folder afresh. Only the driver writes the manifest (each write atomic).
    """

    def __init__(self, output: str | os.PathLike[str]) -> None:
        self.output = Path(output)
        self.path = work_dir_for(self.output)
        self.manifest = self.path / "manifest.json"
        self.plan: ChunkPlan | None = None
        self.done: dict[int, dict[str, Any]] = {}
        self._head: dict[str, Any] = {}

    def chunk_path(self, index: int) -> Path:
        return self.path / f"chunk-{index:05d}{CHUNK_SUFFIX}"

    def resume(self, input_path: Path, key: str) -> bool:
        """Load a manifest for this input and options; True if one was found (chunks done kept)."""
        try:
            data = json.loads(self.manifest.read_text())
        except (OSError, ValueError):
            return False
        if (
            data.get("version") != MANIFEST_VERSION
            or data.get("input") != _input_identity(input_path)
            or data.get("config") != key
        ):
            return False
        try:
            self.plan = ChunkPlan.from_json(data["plan"])
        except (KeyError, TypeError, ValueError):
            return False
        self._head = {k: data[k] for k in ("version", "input", "config")}
        # Done means recorded by the driver and the file in place (renamed only when complete).
        self.done = {int(k): v for k, v in data.get("done", {}).items() if self.chunk_path(int(k)).is_file()}
        return True

    def start(self, input_path: Path, key: str, plan: ChunkPlan) -> None:
        """A fresh folder for ``plan`` (whatever an earlier run left there is removed)."""
        self.remove()
        try:
            self.path.mkdir(parents=True)
        except OSError as e:
            raise OutputError(f"{self.output}: cannot create work folder {self.path}: {e.strerror}") from e
        self.plan = plan
        self.done = {}
        self._head = {"version": MANIFEST_VERSION, "input": _input_identity(input_path), "config": key}
        self._save()

    def mark_done(self, result: ChunkResult) -> None:
        self.done[result.index] = {
            "frames": result.frames,
            "damaged": result.damaged,
            "seconds": result.seconds,
        }
        self._save()

    def clean_partials(self) -> None:
        """Remove temporary files of chunk attempts that were killed (never renamed into place)."""
        with contextlib.suppress(OSError):
            for f in self.path.iterdir():
                if f.name.startswith(".") and ".part" in f.name:
                    f.unlink(missing_ok=True)

    def _save(self) -> None:
        assert self.plan is not None
        data = dict(
            self._head, plan=self.plan.to_json(), done={str(k): v for k, v in sorted(self.done.items())}
        )
        try:
            _write_json_atomic(self.manifest, data)
        except OSError as e:
            raise OutputError(f"{self.manifest}: cannot write: {e.strerror}") from e

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

