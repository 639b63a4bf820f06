"""Fixtures for engine tests (shared helpers are in engine_env.py).

- `emu`: an emulator (account `demo`) whose clock runs `SCALE` times faster than wall time.
- `world`: a `World` around `emu`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from engine_env import ACCOUNT, SCALE, World

from reconciler.emulator import Emulator


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator({ACCOUNT: None}, time_scale=SCALE) as emulator:
        yield emulator


@pytest.fixture
def world(emu: Emulator) -> World:
    return World(emu)
