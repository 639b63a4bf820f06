"""Fixtures of the deployment checks; the helpers they share are in deploy_env.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_env import RunningEmulator, running_emulator


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[RunningEmulator]:
    with running_emulator(tmp_path) as running:
        yield running
