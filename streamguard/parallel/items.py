"""What a batch is made of: each input with its output, and what became of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["BatchItem", "BatchResult", "Status"]

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True, slots=True)
class BatchItem:
    input: Path
    output: Path


@dataclass(frozen=True, slots=True)
class BatchResult:
    item: BatchItem
    status: Status
    message: str = ""
    seconds: float = 0.0
    frames: int = 0
    exit_code: int = 0
