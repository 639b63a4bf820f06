"""Fixtures shared by every test folder.

- `network`/`compute`: the aio ARM SDK clients of the test's `emu`, polling without delay. `emu` itself is
  defined by the folder or module that uses them, at the time scale its tests need.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.emulator import Emulator


@pytest.fixture
def network(emu: Emulator) -> Any:
    return emu.network_client(polling_interval=0)


@pytest.fixture
def compute(emu: Emulator) -> Any:
    return emu.compute_client(polling_interval=0)
