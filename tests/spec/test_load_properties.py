"""Whatever a file holds, loading it gives a `Config` or a `ConfigError`, never another exception."""

from __future__ import annotations

import functools
import io
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.spec.config import Config
from reconciler.spec.errors import ConfigError
from reconciler.spec.loader import INTERNAL_ERROR, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
ENV = {"HOME": "/nonexistent-home", "DASK_ROOT_CONFIG": "/nonexistent-etc", "BATCH_KEY": "k"}


def examples(count: int) -> settings:
    """Few enough examples that the whole module runs in a few seconds."""
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
        database=None,
    )


_counter = itertools.count()

KEYS = [
    "accounts", "pools", "defaults", "pool", "clusters", "azure", "auth", "method", "key", "account",
    "vm_size", "batch_url", "virtual_machine_configuration", "image_reference", "start_task",
    "command_line", "resize_timeout", "target_dedicated_nodes", "enable_auto_scale", "metrics", "port",
    "<<", "shared_key", "${env:BATCH_KEY}",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**40, max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["PT2M", "15m", "${env:BATCH_KEY}", "${env:NOPE}", "$${x", "${keyvault:https://v/x}"]),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=10))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)
yamlish = st.text(
    alphabet=st.sampled_from([*"abkey:-  \n\t[]{},&*!|>'\"#%@`?$~0123456789.", "\x00", "\xff", "é"]),
    max_size=120,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


def _load(folder: Path, text: str, suffix: str = ".yaml") -> Config | ConfigError:
    path = folder / f"doc{next(_counter)}{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        return load_config([path], env=ENV, keyvault=lambda ref: "v")
    except ConfigError as exc:
        error = exc
    finally:
        path.unlink()
    assert error.problems
    for problem in error.problems:
        assert INTERNAL_ERROR not in problem.message, problem
        assert problem.line >= 1
        assert problem.col >= 1
        assert str(problem).startswith(f"{path}:")
    return error


def _dump(document: Any) -> str:
    out = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.dump(document, out)
    return out.getvalue()


@examples(150)
@given(text=yamlish)
def test_yamlish_text(folder: Path, text: str) -> None:
    _load(folder, text)


@examples(40)
@given(text=yamlish)
def test_yamlish_templates(folder: Path, text: str) -> None:
    _load(folder, text, suffix=".yaml.j2")


@examples(120)
@given(document=documents)
def test_nested_documents(folder: Path, document: Any) -> None:
    _load(folder, _dump(document))


@functools.cache
def _example_text() -> str:
    return EXAMPLE.read_text()


def _example() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_example_json())
    return loaded


@functools.cache
def _example_json() -> str:
    return json.dumps(YAML(typ="safe", pure=True).load(_example_text()), default=str)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


def _mutate(document: Any, path: tuple[Any, ...], operation: str, value: Any, name: str) -> Any:
    if not path:
        return value if operation in ("replace", "swap") else document
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    current = parent[last]
    if operation == "delete":
        del parent[last]
    elif operation == "replace":
        parent[last] = value
    elif operation == "rename" and isinstance(parent, dict):
        parent[name] = parent.pop(last)
    elif operation == "swap":
        if isinstance(current, dict):
            parent[last] = list(current.values())
        elif isinstance(current, list):
            parent[last] = {str(i): v for i, v in enumerate(current)}
        elif isinstance(current, str):
            parent[last] = [current]
        else:
            parent[last] = str(current)
    return document


def test_example_loads_unchanged(folder: Path) -> None:
    assert isinstance(_load(folder, EXAMPLE.read_text()), Config)


@examples(120)
@given(
    data=st.data(),
    operation=st.sampled_from(["delete", "replace", "rename", "swap"]),
    value=scalars | documents,
    name=keys,
)
def test_mutations_of_the_example(
    folder: Path, data: st.DataObject, operation: str, value: Any, name: str
) -> None:
    document = _example()
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(document)
        path = data.draw(st.sampled_from(paths))
        document = _mutate(document, path, operation, value, name)
    _load(folder, _dump(document))


@examples(60)
@given(junk=st.binary(max_size=200))
def test_binary_junk(folder: Path, junk: bytes) -> None:
    path = folder / f"junk{next(_counter)}.yaml"
    path.write_bytes(junk)
    problems = []
    try:
        load_config([path], env=ENV)
    except ConfigError as exc:
        problems = exc.problems
    finally:
        path.unlink()
    assert all(p.file == str(path) and p.line >= 1 and INTERNAL_ERROR not in p.message for p in problems)
