"""Fixtures shared by every emulator test.

- `emulator`: a started `Emulator(time_scale=1.0)` (account `demo`, well-known key), per test.
- `openapi_policy`: the `OpenApiValidationPolicy` of `batch_client`; its `seen` names the operations checked.
- `batch_client`: the aio `BatchClient` for `demo` over HTTP with shared key; every response it receives,
  retried ones included, is validated against BatchService.json.
- `threaded_emulator`: the emulator on a background loop, for the blocking (sync) SDK clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from openapi import OpenApiValidationPolicy  # type: ignore[import-not-found]

from reconciler.emulator import Emulator, ThreadedEmulator


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(time_scale=1.0) as emu:
        yield emu


@pytest.fixture
def openapi_policy() -> Any:
    return OpenApiValidationPolicy()


@pytest.fixture
async def batch_client(emulator: Emulator, openapi_policy: Any) -> AsyncIterator[Any]:
    async with emulator.batch_client(per_retry_policies=[openapi_policy]) as client:
        yield client


@pytest.fixture
def threaded_emulator() -> Iterator[ThreadedEmulator]:
    with Emulator.in_thread(time_scale=1.0) as emu:
        yield emu
