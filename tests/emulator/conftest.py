"""Fixtures shared by every emulator test.

- `emulator`: a started `Emulator(time_scale=1.0)` (account `demo`, well-known key), per test.
- `batch_client`: the aio `BatchClient` for `demo` over HTTP with shared key; every response body it receives
  is checked against BatchService.json when `tests/emulator/openapi.py` provides `OpenApiValidationPolicy`.
- `threaded_emulator`: the emulator on a background loop, for the blocking (sync) SDK clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from reconciler.emulator import Emulator, ThreadedEmulator


def validation_policies() -> list[Any]:
    try:
        from openapi import OpenApiValidationPolicy  # type: ignore[import-not-found]
    except ImportError:
        try:
            from tests.emulator.openapi import OpenApiValidationPolicy
        except ImportError:
            return []
    return [OpenApiValidationPolicy()]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(time_scale=1.0) as emu:
        yield emu


@pytest.fixture
async def batch_client(emulator: Emulator) -> AsyncIterator[Any]:
    async with emulator.batch_client(per_call_policies=validation_policies()) as client:
        yield client


@pytest.fixture
def threaded_emulator() -> Iterator[ThreadedEmulator]:
    with Emulator.in_thread(time_scale=1.0) as emu:
        yield emu
