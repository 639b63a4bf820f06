"""Credentials built from auth settings reach the emulator through azure-identity's real code paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.identity.aio import CertificateCredential, ClientSecretCredential, DefaultAzureCredential
from azure_env import CALLER, NO_RETRIES, MakeConfig, certificate, client_secret

from reconciler.azure.clients import AzureClients
from reconciler.azure.credentials import Credentials, identity_options, token_credential
from reconciler.azure.errors import ErrorKind
from reconciler.azure.observe import observe_account
from reconciler.emulator import Emulator
from reconciler.spec.account import AzureSettings, ClientSecretAuth, DefaultAuth, SharedKeyAuth
from reconciler.spec.secrets import Secret


async def test_shared_key_signs_data_plane_calls(emu: Emulator, make_config: MakeConfig) -> None:
    async with AzureClients(make_config(), caller=CALLER, client_options=NO_RETRIES) as clients:
        assert isinstance(
            clients.credentials.batch(clients.config.accounts["alpha"]), AzureNamedKeyCredential
        )
        observed = await observe_account(clients, "alpha")
    assert observed.error is None
    assert emu.counters.total("batch.Pools_ListPools", CALLER, 200) == 1


@pytest.mark.parametrize("auth", [client_secret, certificate], ids=["client_secret", "certificate"])
async def test_service_principal_tokens_reach_the_data_plane_over_tls(
    emu: Emulator, make_config: MakeConfig, auth: object
) -> None:
    assert callable(auth)
    config = make_config(tls=True, alpha=auth(emu))
    async with AzureClients(config, caller=CALLER, client_options=NO_RETRIES) as clients:
        observed = await observe_account(clients, "alpha")
        again = await observe_account(clients, "alpha")
    assert observed.error is None
    assert again.error is None
    assert emu.counters.total("batch.Pools_ListPools", CALLER, 200) == 2
    assert emu.counters.total("identity.Token", status=200) == 1, "one token, cached by the credential"


async def test_wrong_client_secret_is_an_auth_error_of_that_account(
    emu: Emulator, make_config: MakeConfig
) -> None:
    wrong = {**client_secret(emu), "client_secret": "not-the-secret"}
    config = make_config(tls=True, alpha=wrong)
    async with AzureClients(config, caller=CALLER, client_options=NO_RETRIES) as clients:
        observed = await observe_account(clients, "alpha")
    assert observed.error is not None
    assert observed.error.kind is ErrorKind.AUTH
    assert "not-the-secret" not in observed.error.describe()


async def test_certificate_credential_signs_management_calls(emu: Emulator, make_config: MakeConfig) -> None:
    config = make_config(azure_auth=certificate(emu))
    async with AzureClients(config, caller=CALLER, client_options=NO_RETRIES) as clients:
        mgmt = clients.batch_mgmt(emu.connection["arm"]["subscription_id"])
        pools = [p async for p in mgmt.pool.list_by_batch_account("rg-emulator", "alpha")]
    assert pools == []
    assert emu.counters.total("arm.*", CALLER, 200) == 1


def test_instance_discovery_is_off_only_outside_the_public_clouds(tmp_path: Path) -> None:
    public = identity_options(AzureSettings())
    assert public == {"authority": "https://login.microsoftonline.com"}
    private = identity_options(
        AzureSettings(authority="https://127.0.0.1:8778", ca_bundle=tmp_path / "ca.pem")
    )
    assert private["disable_instance_discovery"] is True
    assert private["connection_verify"] == str(tmp_path / "ca.pem")


async def test_one_credential_per_distinct_auth_closed_with_the_holder(emu: Emulator) -> None:
    identity = emu.connection["identity"]
    settings = AzureSettings(
        authority=identity["authority"],
        ca_bundle=emu.connection["ca_bundle"],
        auth=DefaultAuth(method="default"),
    )
    auth = ClientSecretAuth.model_validate(client_secret(emu))
    async with Credentials(settings) as credentials:
        first = credentials.token(auth)
        assert credentials.token(ClientSecretAuth.model_validate(client_secret(emu))) is first
        assert isinstance(first, ClientSecretCredential)
        assert isinstance(credentials.arm(), DefaultAzureCredential)
        token = await first.get_token("https://batch.core.windows.net//.default")
        assert token.token
    with pytest.raises(RuntimeError, match="closed"):
        credentials.token(auth)


def test_certificate_auth_builds_a_certificate_credential(emu: Emulator) -> None:
    from reconciler.spec.account import CertificateAuth

    settings = AzureSettings(authority=emu.connection["identity"]["authority"])
    credential = token_credential(CertificateAuth.model_validate(certificate(emu)), settings)
    assert isinstance(credential, CertificateCredential)


@pytest.mark.parametrize(
    ("auth", "kind"),
    [
        (
            {"method": "managed_identity", "client_id": "00000000-0000-4000-8000-0000000000c2"},
            "ManagedIdentity",
        ),
        ({"method": "managed_identity"}, "ManagedIdentity"),
        ({"method": "azure_cli"}, "AzureCli"),
        ({"method": "default"}, "DefaultAzure"),
    ],
)
async def test_every_token_method_builds_its_credential(
    emu: Emulator, make_config: MakeConfig, auth: dict[str, str], kind: str
) -> None:
    config = make_config(azure_auth=auth)
    async with Credentials(config.azure) as credentials:
        credential = credentials.arm()
        assert type(credential).__name__ == f"{kind}Credential"
        with pytest.raises(TypeError):
            credentials.token(SharedKeyAuth(method="shared_key", key=Secret("a2V5")))


async def test_an_unknown_tenant_is_an_auth_error(emu: Emulator, make_config: MakeConfig) -> None:
    unknown = {**client_secret(emu), "tenant_id": "00000000-0000-4000-8000-00000000dead"}
    async with AzureClients(make_config(tls=True, alpha=unknown), client_options=NO_RETRIES) as clients:
        observed = await observe_account(clients, "alpha")
    assert observed.error is not None
    assert observed.error.kind is ErrorKind.AUTH


async def test_token_auth_over_plain_http_is_a_configuration_error(
    emu: Emulator, make_config: MakeConfig
) -> None:
    async with AzureClients(make_config(alpha=client_secret(emu)), client_options=NO_RETRIES) as clients:
        observed = await observe_account(clients, "alpha")
        fine = await observe_account(clients, "beta")
    assert observed.error is not None
    assert (observed.error.kind, observed.error.code) == (ErrorKind.INVALID, "InvalidConfiguration")
    assert observed.error.describe() == (
        "InvalidConfiguration: account alpha: token auth needs an https batch_url "
        "(plain http takes shared_key only)"
    )
    assert fine.error is None
