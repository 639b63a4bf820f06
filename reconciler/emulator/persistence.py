"""The `--state-file`: the clock and every registered part, as one versioned JSON document.

A demo left running overnight, or an emulator restarted under a running daemon, must come back with the
same pools at the same simulated time; writes go through a temporary file and an atomic rename so a crash
mid-save never leaves a half-written state behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.emulator.context import EmulatorContext

STATE_VERSION = 1


class StateFileError(Exception):
    """The state file exists but cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class SavedState:
    clock: dict[str, float | str]
    parts: dict[str, dict[str, Any]]


def capture(ctx: EmulatorContext) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "saved_at": ctx.clock.now().isoformat(),
        "clock": ctx.clock.state(),
        "parts": {name: part.dump() for name, part in ctx.parts.items()},
    }


def read_state(path: Path) -> SavedState | None:
    """The saved state, or None when there is no file yet (a first start)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StateFileError(f"{path}: cannot read state file: {error.strerror}") from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise StateFileError(f"{path}: not a valid state file: {error}") from None
    if not isinstance(document, dict):
        raise StateFileError(f"{path}: not a valid state file: expected a JSON object")
    version = document.get("version")
    if version != STATE_VERSION:
        raise StateFileError(
            f"{path}: state file version {version!r} is not supported (expected {STATE_VERSION})"
        )
    clock, parts = document.get("clock"), document.get("parts", {})
    if not isinstance(clock, dict) or not isinstance(parts, dict):
        raise StateFileError(f"{path}: not a valid state file: missing clock or parts")
    return SavedState(clock, parts)


def restore(ctx: EmulatorContext, saved: SavedState) -> None:
    """Load each registered part; parts unknown to this version are ignored, missing ones start empty."""
    for name, part in ctx.parts.items():
        if name in saved.parts:
            part.load(saved.parts[name])


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def save(ctx: EmulatorContext, path: Path) -> None:
    """Snapshot on the event loop (consistent), write in a thread (the disk must not stall requests)."""
    text = json.dumps(capture(ctx), separators=(",", ":"))
    await asyncio.to_thread(write_atomic, path, text)
