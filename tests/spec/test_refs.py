"""`${env:}`, `${file:}` and `${keyvault:}` references, and secrets never showing up in output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.spec.config import Config
from reconciler.spec.errors import ConfigError
from reconciler.spec.refs import (
    AzureKeyVault,
    KeyVaultRef,
    RefStr,
    UnresolvedReference,
    parse_keyvault,
    resolve,
)
from reconciler.spec.secrets import Secret

WriteFile = Callable[[str, str], Path]
Load = Callable[..., Config]
Problems = Callable[..., list[str]]

VAULT = "https://myvault.vault.azure.net/secrets/batch-key"


def _no_vault(ref: KeyVaultRef) -> str:
    raise AssertionError(f"Key Vault must not be called at load time ({ref})")


def _resolve(text: str, env: dict[str, str] | None = None, base: Path = Path("/nonexistent")) -> Any:
    return resolve(text, env=env or {}, base_dir=base, keyvault=_no_vault)


def _account(key: str, *, extra: str = "") -> str:
    return (
        "accounts:\n  prod:\n    batch_url: https://prodbatch.japaneast.batch.azure.com\n"
        f"    auth:\n      method: shared_key\n      key: {key}\n{extra}"
    )


def test_text_without_references_is_returned_as_is() -> None:
    value = _resolve("echo $HOME ${HOME} $TargetDedicatedNodes")
    assert value == "echo $HOME ${HOME} $TargetDedicatedNodes"
    assert not isinstance(value, RefStr)


def test_env_reference_whole_and_embedded() -> None:
    assert _resolve("${env:A}", {"A": "x"}) == "x"
    embedded = _resolve("http://${env:HOST}:${env:PORT}/", {"HOST": "h", "PORT": "1"})
    assert embedded == "http://h:1/"
    assert isinstance(embedded, RefStr)
    assert embedded.reference == "http://${env:HOST}:${env:PORT}/"


def test_escape_gives_a_literal_reference_text() -> None:
    assert _resolve("$${env:A} and $${x}", {}) == "${env:A} and ${x}"


def test_file_reference_is_relative_to_the_config_and_loses_its_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "token.txt").write_text("s3cret\n\n")
    assert _resolve("${file:token.txt}", base=tmp_path) == "s3cret"
    assert _resolve(f"pre-${{file:{tmp_path / 'token.txt'}}}", base=Path("/")) == "pre-s3cret"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${env:BATCH_KEY}", "environment variable BATCH_KEY is not set"),
        ("${env:}", "${env:} needs a variable name"),
        ("${file:missing.txt}", "does not exist or is not a regular file"),
        ("${file:.}", "does not exist or is not a regular file"),
        ("x${keyvault:" + VAULT + "}", "must be the whole value"),
        ("${keyvault:http://v.vault.azure.net/secrets/a}", "has the form"),
        ("${keyvault:https://v.vault.azure.net/keys/a}", "has the form"),
        ("${keyvault:https://v.vault.azure.net/secrets/a/b/c}", "has the form"),
    ],
)
def test_unresolvable_references(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(UnresolvedReference) as caught:
        _resolve(text, base=tmp_path)
    assert message in str(caught.value)


def test_file_reference_refuses_large_files(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * (1024 * 1024 + 1))
    with pytest.raises(UnresolvedReference, match="larger than"):
        _resolve("${file:big}", base=tmp_path)


def test_keyvault_reference_forms() -> None:
    assert parse_keyvault(VAULT) == KeyVaultRef("https://myvault.vault.azure.net", "batch-key", None)
    assert parse_keyvault(VAULT + "/0123abc") == KeyVaultRef(
        "https://myvault.vault.azure.net", "batch-key", "0123abc"
    )


def test_keyvault_reference_is_lazy() -> None:
    calls: list[KeyVaultRef] = []

    def vault(ref: KeyVaultRef) -> str:
        calls.append(ref)
        return "from-vault"

    value = resolve("${keyvault:" + VAULT + "}", env={}, base_dir=Path("/"), keyvault=vault)
    assert isinstance(value, Secret)
    assert calls == []
    assert value.reveal() == "from-vault"
    assert value.reveal() == "from-vault"
    assert len(calls) == 1
    assert str(value) == "${keyvault:" + VAULT + "}"


def test_azure_keyvault_builds_no_credential_until_used() -> None:
    vault = AzureKeyVault()
    assert vault._credential is None
    assert vault._clients == {}


def test_env_reference_in_a_secret_field_keeps_the_reference(write: WriteFile, load: Load) -> None:
    config = load(write("x.yaml", _account("${env:BATCH_KEY}")))
    key = config.accounts["prod"].auth.key  # type: ignore[union-attr]
    assert isinstance(key, Secret)
    assert key.reveal() == "k3y-VALUE-42"
    assert str(key) == "${env:BATCH_KEY}"
    assert "k3y-VALUE-42" not in repr(config)
    assert "k3y-VALUE-42" not in str(config.model_dump())
    assert "${env:BATCH_KEY}" in str(config.model_dump())


def test_keyvault_reference_in_a_secret_field_is_resolved_on_reveal_only(
    write: WriteFile, load: Load, keyvault: Any
) -> None:
    config = load(write("x.yaml", _account("${keyvault:" + VAULT + "}")))
    assert keyvault.calls == []
    key = config.accounts["prod"].auth.key  # type: ignore[union-attr]
    assert "vault-SECRET-value" not in repr(config)
    assert key.reveal() == "vault-SECRET-value"
    assert keyvault.calls == [KeyVaultRef("https://myvault.vault.azure.net", "batch-key", None)]


def test_keyvault_reference_outside_a_secret_field_is_a_problem(write: WriteFile, problems: Problems) -> None:
    text = _account("${env:BATCH_KEY}", extra="    account_name: ${keyvault:" + VAULT + "}\n")
    path = write("x.yaml", text)
    line = text.count("\n", 0, text.index("${keyvault")) + 1
    assert problems(path) == [
        f"{path}:{line}:19: accounts.prod.account_name: a ${{keyvault:...}} reference is only allowed"
        " in secret fields (passwords, keys)"
    ]


def test_missing_variable_is_reported_with_other_problems(write: WriteFile, problems: Problems) -> None:
    path = write("x.yaml", _account("${env:NOT_SET}") + "metrics:\n  port: 0\n")
    found = problems(path)
    assert found[0] == f"{path}:6:12: accounts.prod.auth.key: environment variable NOT_SET is not set"
    assert found[1].startswith(f"{path}:8:9: metrics.port: ")


def test_escaped_reference_stays_literal_in_the_config(write: WriteFile, load: Load) -> None:
    text = _account("$${env:BATCH_KEY}")
    key = load(write("x.yaml", text)).accounts["prod"].auth.key  # type: ignore[union-attr]
    assert key.reveal() == "${env:BATCH_KEY}"


@pytest.mark.parametrize(
    "auth",
    [
        "{method: shared_kee, key: S3CRET-literal}",
        "{method: shared_key, key: S3CRET-literal, extra: 1}",
        "{method: shared_key, key: [S3CRET-literal]}",
        "{method: client_secret, client_secret: S3CRET-literal}",
        "{method: certificate, certificate_password: S3CRET-literal, tenant_id: 5}",
    ],
)
def test_secret_values_never_appear_in_errors(write: WriteFile, load: Load, auth: str) -> None:
    text = (
        "accounts:\n  prod:\n    batch_url: https://prodbatch.japaneast.batch.azure.com\n"
        f"    auth: {auth}\n"
        "  two:\n    batch_url: https://two.japaneast.batch.azure.com\n"
        "    auth: {method: shared_key, key: '${env:BATCH_KEY}'}\n"
        "metrics:\n  port: -1\n  basic_auth: {username: u, password: S3CRET-literal, x: 1}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load(write("x.yaml", text))
    for shown in (str(caught.value), repr(caught.value), repr(caught.value.problems)):
        assert "S3CRET-literal" not in shown
        assert "k3y-VALUE-42" not in shown


REGISTRY_DEFAULTS = """\
defaults:
  pool:
    virtual_machine_configuration:
      container_configuration:
        type: dockerCompatible
        container_registries:
          - registry_server: myregistry.azurecr.io
            username: ${keyvault:https://myvault.vault.azure.net/secrets/registry-user}
            password: ${keyvault:https://myvault.vault.azure.net/secrets/batch-key}
pools:
  p1:
    account: prod
    vm_size: standard_d4s_v3
    target_dedicated_nodes: 1
    virtual_machine_configuration:
      image_reference: {publisher: microsoft-dsvm, offer: ubuntu-hpc, sku: "2204", version: latest}
      node_agent_sku_id: batch.node.ubuntu 22.04
"""


def test_keyvault_in_defaults_is_checked_where_it_lands(write: WriteFile, problems: Problems) -> None:
    text = _account("${env:BATCH_KEY}") + REGISTRY_DEFAULTS
    path = write("x.yaml", text)
    line = text.count("\n", 0, text.index("${keyvault")) + 1
    assert problems(path) == [
        f"{path}:{line}:23: defaults.pool.virtual_machine_configuration.container_configuration"
        ".container_registries[0].username: a ${keyvault:...} reference is only allowed in secret fields"
        " (passwords, keys) (inherited by pools.p1)"
    ]


def test_keyvault_in_defaults_for_a_secret_field(write: WriteFile, load: Load, keyvault: Any) -> None:
    text = _account("${env:BATCH_KEY}") + REGISTRY_DEFAULTS.replace(
        "${keyvault:https://myvault.vault.azure.net/secrets/registry-user}", "reader"
    )
    config = load(write("x.yaml", text))
    vm = config.pools["p1"].virtual_machine_configuration
    assert vm.container_configuration is not None
    [registry] = vm.container_configuration.container_registries or []
    assert keyvault.calls == []
    assert registry.password is not None
    assert registry.password.reveal() == "vault-SECRET-value"
