"""The token endpoint driven by azure-identity's real credentials, sync and aio, secret and certificate."""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import jwt
import pytest
import trustme
from aiohttp import web
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientSecretCredential
from azure.identity import aio as identity_aio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from reconciler.emulator.clock import SimClock
from reconciler.emulator.context import AccountSettings, EmulatorContext
from reconciler.emulator.identity import ARM_AUDIENCE, BATCH_AUDIENCE, IdentityProvider, TokenError

ARM_SCOPE = "https://management.azure.com/.default"
BATCH_SCOPE = "https://batch.core.windows.net//.default"


@dataclass
class Tenant:
    identity: IdentityProvider
    base_url: str
    ca_bundle: str


@pytest.fixture
async def tenant(tmp_path: Path) -> AsyncIterator[Tenant]:
    ctx = EmulatorContext(SimClock(), {"demo": AccountSettings("demo")}, tmp_path)
    identity = IdentityProvider(ctx)
    app = web.Application()
    identity.add_routes(app)
    ca = trustme.CA()
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield Tenant(identity, f"https://127.0.0.1:{port}", str(ca_path))
    await runner.cleanup()


def claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.mark.parametrize("kind", ["secret", "certificate"])
async def test_aio_credentials_get_tokens_for_the_scope_asked(tenant: Tenant, kind: str) -> None:
    credential = tenant.identity.credential(tenant.base_url, tenant.ca_bundle, kind=kind)  # type: ignore[arg-type]
    async with credential:
        arm = await credential.get_token(ARM_SCOPE)
        batch = await credential.get_token(BATCH_SCOPE)
    assert claims(arm.token)["aud"] == ARM_AUDIENCE
    assert claims(batch.token)["aud"] == BATCH_AUDIENCE
    assert claims(arm.token)["tid"] == tenant.identity.ctx.tenant_id
    assert claims(arm.token)["oid"] == tenant.identity.object_id
    assert 3000 < arm.expires_on - time.time() <= 3600
    tenant.identity.verify_bearer(f"Bearer {arm.token}", ARM_AUDIENCE)
    tenant.identity.verify_bearer(f"Bearer {batch.token}", BATCH_AUDIENCE)


@pytest.mark.parametrize("kind", ["secret", "certificate"])
async def test_sync_credentials_go_through_msal(tenant: Tenant, kind: str) -> None:
    credential = tenant.identity.credential(tenant.base_url, tenant.ca_bundle, aio=False, kind=kind)  # type: ignore[arg-type]
    token = await asyncio.to_thread(credential.get_token, ARM_SCOPE)
    tenant.identity.verify_bearer(f"Bearer {token.token}", ARM_AUDIENCE)
    assert claims(token.token)["appid"] == tenant.identity.ctx.client_id


async def test_wrong_secret_is_refused_sync_and_aio(tenant: Tenant) -> None:
    ctx = tenant.identity.ctx
    common = {
        "authority": tenant.base_url,
        "disable_instance_discovery": True,
        "connection_verify": tenant.ca_bundle,
    }
    async with identity_aio.ClientSecretCredential(ctx.tenant_id, ctx.client_id, "wrong", **common) as bad:
        with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
            await bad.get_token(ARM_SCOPE)
    sync_bad = ClientSecretCredential(ctx.tenant_id, ctx.client_id, "wrong", **common)
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        await asyncio.to_thread(sync_bad.get_token, ARM_SCOPE)


def foreign_certificate(tmp_path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-registered")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "foreign.pem"
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(key_pem + cert.public_bytes(serialization.Encoding.PEM))
    return path


async def test_assertion_signed_by_an_unregistered_certificate_is_refused(
    tenant: Tenant, tmp_path: Path
) -> None:
    ctx = tenant.identity.ctx
    common = {
        "authority": tenant.base_url,
        "disable_instance_discovery": True,
        "connection_verify": tenant.ca_bundle,
    }
    path = str(foreign_certificate(tmp_path))
    async with identity_aio.CertificateCredential(ctx.tenant_id, ctx.client_id, path, **common) as bad:
        with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
            await bad.get_token(ARM_SCOPE)
    sync_bad = CertificateCredential(ctx.tenant_id, ctx.client_id, path, **common)
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        await asyncio.to_thread(sync_bad.get_token, ARM_SCOPE)


async def test_unknown_tenant_and_client_are_refused(tenant: Tenant) -> None:
    ctx = tenant.identity.ctx
    common = {
        "authority": tenant.base_url,
        "disable_instance_discovery": True,
        "connection_verify": tenant.ca_bundle,
    }
    async with identity_aio.ClientSecretCredential(
        ctx.tenant_id, "not-registered", ctx.client_secret, **common
    ) as c:
        with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
            await c.get_token(ARM_SCOPE)


async def test_verify_bearer_refuses_wrong_audience_expired_and_foreign_tokens(tenant: Tenant) -> None:
    identity = tenant.identity
    batch_token = identity.issue_token(BATCH_AUDIENCE)
    with pytest.raises(TokenError) as wrong_audience:
        identity.verify_bearer(f"Bearer {batch_token}", ARM_AUDIENCE)
    assert wrong_audience.value.code == "InvalidAuthenticationTokenAudience"
    with pytest.raises(TokenError) as expired:
        identity.verify_bearer(f"Bearer {identity.issue_token(ARM_AUDIENCE, lifetime=-10)}", ARM_AUDIENCE)
    assert expired.value.code == "ExpiredAuthenticationToken"
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({**claims(identity.issue_token(ARM_AUDIENCE))}, other_key, algorithm="RS256")
    with pytest.raises(TokenError) as foreign:
        identity.verify_bearer(f"Bearer {forged}", ARM_AUDIENCE)
    assert foreign.value.code == "InvalidAuthenticationToken"
    with pytest.raises(TokenError) as missing:
        identity.verify_bearer(None, ARM_AUDIENCE)
    assert missing.value.code == "AuthenticationFailed"


async def test_signing_key_survives_a_restart_through_state(tenant: Tenant, tmp_path: Path) -> None:
    token = tenant.identity.issue_token(ARM_AUDIENCE)
    ctx = EmulatorContext(SimClock(), {}, tmp_path / "second")
    restarted = IdentityProvider(ctx)
    with pytest.raises(TokenError):
        restarted.verify_bearer(f"Bearer {token}", ARM_AUDIENCE)
    restarted.load(tenant.identity.dump())
    restarted.verify_bearer(f"Bearer {token}", ARM_AUDIENCE)
    assert ctx.parts["identity"] is restarted


def test_certificate_file_holds_key_and_certificate(tenant: Tenant) -> None:
    pem = tenant.identity.certificate_path.read_bytes()
    assert isinstance(serialization.load_pem_private_key(pem, password=None), rsa.RSAPrivateKey)
    assert b"BEGIN CERTIFICATE" in pem


def assertion(tenant: Tenant, algorithm: str, **claims: object) -> str:
    pem = tenant.identity.certificate_path.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    cert = x509.load_pem_x509_certificate(pem)
    header: dict[str, str] = {"x5t": base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).decode()}
    if algorithm == "PS256":
        header = {"x5t#S256": base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).decode()}
    now = int(time.time())
    body = {
        "aud": f"{tenant.base_url}/{tenant.identity.ctx.tenant_id}/oauth2/v2.0/token",
        "iss": tenant.identity.ctx.client_id,
        "sub": tenant.identity.ctx.client_id,
        "jti": "one",
        "nbf": now,
        "exp": now + 600,
        **claims,
    }
    return jwt.encode(body, key, algorithm=algorithm, headers=header)  # type: ignore[arg-type]


async def post_assertion(tenant: Tenant, client_assertion: str) -> tuple[int, dict[str, object]]:
    context = ssl.create_default_context(cafile=tenant.ca_bundle)
    form = {
        "grant_type": "client_credentials",
        "client_id": tenant.identity.ctx.client_id,
        "scope": ARM_SCOPE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": client_assertion,
    }
    url = f"{tenant.base_url}/{tenant.identity.ctx.tenant_id}/oauth2/v2.0/token"
    async with aiohttp.ClientSession() as http, http.post(url, data=form, ssl=context) as response:
        return response.status, await response.json()


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
async def test_assertions_are_checked_for_signature_audience_and_time(tenant: Tenant, algorithm: str) -> None:
    status, body = await post_assertion(tenant, assertion(tenant, algorithm))
    assert status == 200
    tenant.identity.verify_bearer(f"Bearer {body['access_token']}", ARM_AUDIENCE)
    status, body = await post_assertion(tenant, assertion(tenant, algorithm, aud="https://elsewhere/token"))
    assert (status, body["error_codes"]) == (401, [700212])
    past = int(time.time()) - 7200
    status, body = await post_assertion(tenant, assertion(tenant, algorithm, nbf=past, exp=past + 600))
    assert (status, body["error_codes"]) == (401, [700024])
    tampered = assertion(tenant, algorithm)[:-6] + "AAAAAA"
    status, body = await post_assertion(tenant, tampered)
    assert (status, body["error"]) == (401, "invalid_client")
