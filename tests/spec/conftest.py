"""Helpers for loader tests: config files written into a temporary directory, and where text sits in them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from reconciler.spec.config import Config
from reconciler.spec.errors import ConfigError
from reconciler.spec.loader import load_config
from reconciler.spec.refs import KeyVaultRef

WriteFile = Callable[[str, str], Path]


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    """Write a (dedented) file under the test's directory and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment with no dask config of its own (HOME is empty) and a Batch key."""
    return {
        "HOME": str(tmp_path / "home"),
        "DASK_ROOT_CONFIG": str(tmp_path / "etc"),
        "BATCH_KEY": "k3y-VALUE-42",
    }


class KeyVaultStub:
    """Records what was fetched, so a test can tell that resolution is lazy."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self.calls: list[KeyVaultRef] = []

    def __call__(self, ref: KeyVaultRef) -> str:
        self.calls.append(ref)
        return self.values[ref.name]


@pytest.fixture
def keyvault() -> KeyVaultStub:
    return KeyVaultStub({"batch-key": "vault-SECRET-value"})


@pytest.fixture
def load(env: dict[str, str], keyvault: KeyVaultStub) -> Callable[..., Config]:
    def _load(*paths: Path, **extra_env: str) -> Config:
        return load_config(list(paths), env={**env, **extra_env}, keyvault=keyvault)

    return _load


@pytest.fixture
def problems(load: Callable[..., Config]) -> Callable[..., list[str]]:
    """The problem lines a load fails with (the test fails if it loads)."""

    def _problems(*paths: Path, **extra_env: str) -> list[str]:
        with pytest.raises(ConfigError) as caught:
            load(*paths, **extra_env)
        return [str(p) for p in caught.value.problems]

    return _problems
