"""A small Entra ID: one tenant, one service principal, and the token endpoint MSAL talks to.

Credentials in the product are azure-identity's real ones; pointing their authority here lets every test
exercise the same code paths (secret and certificate service principals) that run against Azure.

Token lifetimes are wall time, not simulated time: azure-identity caches tokens against the wall clock, so
a simulated expiry would make a fast-running emulator refuse tokens the client still believes valid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from reconciler.emulator.context import EmulatorContext

TOKEN_LIFETIME_SECONDS = 3599
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ARM_AUDIENCE = "https://management.azure.com/"
LEGACY_ARM_AUDIENCE = "https://management.core.windows.net/"
BATCH_AUDIENCE = "https://batch.core.windows.net/"
_CANONICAL_AUDIENCES = {a.rstrip("/"): a for a in (ARM_AUDIENCE, BATCH_AUDIENCE)}
_VERIFIED_CACHE_LIMIT = 10_000


class TokenError(Exception):
    """A bearer token the caller must answer with 401; `code` is the ARM error code for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AadError(Exception):
    """A token request Entra ID refuses: carries the AADSTS body MSAL turns into ClientAuthenticationError."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description


@dataclass(frozen=True)
class _Verified:
    audience: str
    expires: float


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def audience_for_scope(scope: str) -> str:
    """The `aud` Entra ID puts in a token for a `<resource>/.default` scope."""
    resource = scope.removesuffix(".default").removesuffix("/") if scope.endswith("/.default") else scope
    return _CANONICAL_AUDIENCES.get(resource.rstrip("/"), resource)


class IdentityProvider:
    """The tenant's token endpoint plus verification of the tokens it issued, for ARM and the data plane."""

    name = "identity"

    def __init__(self, ctx: EmulatorContext) -> None:
        self.ctx = ctx
        self.object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{ctx.tenant_id}:{ctx.client_id}"))
        self._signing_key = _new_rsa_key()
        self._kid = ""
        self._set_signing_key(self._signing_key)
        self.certificate_path = ctx.workdir / "service-principal.pem"
        self._certificate = self._write_service_principal_certificate()
        self._verified: dict[str, _Verified] = {}
        ctx.register(self)

    # --- keys and certificates -------------------------------------------------------------------------

    def _set_signing_key(self, key: rsa.RSAPrivateKey) -> None:
        self._signing_key = key
        self._public_key = key.public_key()
        der = self._public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        self._kid = _b64url(hashlib.sha256(der).digest()[:15])

    def _write_service_principal_certificate(self) -> x509.Certificate:
        key = _new_rsa_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"emulator-sp-{self.ctx.client_id}")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.ctx.workdir.mkdir(parents=True, exist_ok=True)
        self.certificate_path.write_bytes(key_pem + cert.public_bytes(serialization.Encoding.PEM))
        self.certificate_path.chmod(0o600)
        return cert

    def _thumbprints(self) -> tuple[str, str]:
        sha1 = _b64url(self._certificate.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is SHA-1 by spec
        sha256 = _b64url(self._certificate.fingerprint(hashes.SHA256()))
        return sha1, sha256

    def jwks(self) -> dict[str, Any]:
        numbers = self._public_key.public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self._kid,
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                }
            ]
        }

    # --- state ------------------------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """The token-signing key, so tokens issued before a restart stay valid after it."""
        pem = self._signing_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {"signing_key": pem.decode()}

    def load(self, data: dict[str, Any]) -> None:
        pem = data.get("signing_key")
        if not pem:
            return
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            self._set_signing_key(key)
            self._verified.clear()

    # --- issuing ----------------------------------------------------------------------------------------

    def issuer(self) -> str:
        return f"https://sts.windows.net/{self.ctx.tenant_id}/"

    def issue_token(self, audience: str, lifetime: float = TOKEN_LIFETIME_SECONDS) -> str:
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": self.issuer(),
            "iat": now,
            "nbf": now - 5,
            "exp": now + int(lifetime),
            "appid": self.ctx.client_id,
            "azp": self.ctx.client_id,
            "idtyp": "app",
            "oid": self.object_id,
            "sub": self.object_id,
            "tid": self.ctx.tenant_id,
            "uti": _b64url(uuid.uuid4().bytes),
            "ver": "1.0",
        }
        return jwt.encode(claims, self._signing_key, algorithm="RS256", headers={"kid": self._kid})

    def _check_tenant(self, tenant: str) -> None:
        if tenant.lower() not in (self.ctx.tenant_id.lower(), "organizations"):
            raise AadError(
                400,
                "invalid_request",
                90002,
                f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct "
                "tenant ID and are signing into the correct cloud.",
            )

    def _check_client(self, form: dict[str, str], token_endpoint: str) -> None:
        client_id = form.get("client_id", "")
        if client_id != self.ctx.client_id:
            raise AadError(
                400,
                "unauthorized_client",
                700016,
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory "
                f"'{self.ctx.tenant_id}'.",
            )
        if "client_secret" in form:
            if not hmac.compare_digest(form["client_secret"].encode(), self.ctx.client_secret.encode()):
                raise AadError(
                    401,
                    "invalid_client",
                    7000215,
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
                    f"request is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{client_id}'.",
                )
            return
        if form.get("client_assertion_type") == ASSERTION_TYPE and "client_assertion" in form:
            self._check_assertion(form["client_assertion"], token_endpoint)
            return
        raise AadError(
            401,
            "invalid_client",
            7000218,
            "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
        )

    def _check_assertion(self, assertion: str, token_endpoint: str) -> None:
        def bad(aadsts: int, why: str) -> AadError:
            return AadError(401, "invalid_client", aadsts, f"AADSTS{aadsts}: {why}")

        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise bad(50027, f"JWT token is invalid or malformed: {exc}") from exc
        sha1, sha256 = self._thumbprints()
        x5t, x5t256 = header.get("x5t"), header.get("x5t#S256")
        if not ((x5t and x5t.rstrip("=") == sha1) or (x5t256 and x5t256.rstrip("=") == sha256)):
            raise bad(
                700027,
                f"The certificate with identifier used to sign the client assertion is not registered on "
                f"application. [Reason - The key was not found., Thumbprint of key used by client: "
                f"'{x5t or x5t256}']",
            )
        algorithm = header.get("alg")
        if algorithm not in ("RS256", "PS256"):
            raise bad(5002738, f"Unsupported signing algorithm '{algorithm}' in client assertion.")
        try:
            claims = jwt.decode(
                assertion,
                self._certificate.public_key(),  # type: ignore[arg-type]
                algorithms=[algorithm],
                audience=token_endpoint,
                issuer=self.ctx.client_id,
                options={"require": ["exp", "aud", "iss", "sub"]},
                leeway=300,
            )
        except jwt.ExpiredSignatureError as exc:
            raise bad(700024, "Client assertion is not within its valid time range.") from exc
        except jwt.InvalidAudienceError as exc:
            raise bad(
                700212, f"No matching federated identity record found for presented assertion audience: {exc}"
            ) from exc
        except jwt.PyJWTError as exc:
            raise bad(700027, f"Client assertion failed signature validation. {exc}") from exc
        if claims.get("sub") != self.ctx.client_id:
            raise bad(700021, "Client assertion application identifier doesn't match 'client_id' parameter.")

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        token_endpoint = f"{request.scheme}://{request.host}{request.path}"
        try:
            self._check_tenant(request.match_info["tenant"])
            if form.get("grant_type") != "client_credentials":
                raise AadError(
                    400,
                    "unsupported_grant_type",
                    70003,
                    f"AADSTS70003: The app requested an unsupported grant type '{form.get('grant_type')}'.",
                )
            self._check_client(form, token_endpoint)
            scopes = [s for s in form.get("scope", "").split() if s.endswith("/.default")]
            if len(scopes) != 1:
                raise AadError(
                    400,
                    "invalid_scope",
                    1002012,
                    f"AADSTS1002012: The provided value for scope {form.get('scope', '')} is not valid. "
                    "Client credential flows must have a scope value with /.default suffixed to the "
                    "resource identifier (application ID URI).",
                )
        except AadError as exc:
            return self._aad_error(exc)
        body = {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECONDS,
            "ext_expires_in": TOKEN_LIFETIME_SECONDS,
            "access_token": self.issue_token(audience_for_scope(scopes[0])),
        }
        return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _aad_error(self, exc: AadError) -> web.Response:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": exc.error,
            "error_description": f"{exc.description}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {stamp}",
            "error_codes": [exc.aadsts],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
        }
        return web.json_response(body, status=exc.status)

    async def _openid_configuration(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        try:
            self._check_tenant(tenant)
        except AadError as exc:
            return self._aad_error(exc)
        base = f"{request.scheme}://{request.host}/{self.ctx.tenant_id}"
        return web.json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "grant_types_supported": ["client_credentials"],
                "tenant_region_scope": "AS",
                "cloud_instance_name": "emulator",
            }
        )

    async def _keys(self, request: web.Request) -> web.Response:
        return web.json_response(self.jwks())

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            self._openid_configuration,
            name="identity.OpenIdConfiguration",
        )
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token, name="identity.Token")
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self._keys, name="identity.Keys")

    # --- verifying --------------------------------------------------------------------------------------

    def verify_bearer(self, authorization: str | None, audience: str | Collection[str]) -> None:
        """Accept only an unexpired token for one of `audience`, signed by this emulator; else TokenError."""
        if not authorization:
            raise TokenError(
                "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise TokenError(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            )
        token = token.strip()
        verified = self._verified.get(token)
        if verified is None:
            verified = self._decode(token)
        if verified.expires <= time.time():
            raise TokenError(
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            )
        allowed = [audience] if isinstance(audience, str) else list(audience)
        if verified.audience.rstrip("/") not in {a.rstrip("/") for a in allowed}:
            raise TokenError(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource '{verified.audience}'. "
                f"It should exactly match with one of the allowed audiences {', '.join(map(repr, allowed))}.",
            )

    def _decode(self, token: str) -> _Verified:
        try:
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=["RS256"],
                issuer=self.issuer(),
                options={"verify_aud": False, "verify_exp": False, "require": ["exp", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError("InvalidAuthenticationToken", "The access token is invalid.") from exc
        verified = _Verified(str(claims["aud"]), float(claims["exp"]))
        if len(self._verified) >= _VERIFIED_CACHE_LIMIT:
            self._verified.clear()
        self._verified[token] = verified
        return verified

    def www_authenticate(self, base_url: str, audience: str, error: TokenError | None = None) -> str:
        """The challenge ARM and Batch send with a 401, naming where a token for `audience` comes from."""
        value = f'Bearer authorization_uri="{base_url}/{self.ctx.tenant_id}", resource="{audience}"'
        if error is not None:
            value += ', error="invalid_token", error_description="{}"'.format(error.message.replace('"', "'"))
        return value

    # --- clients ----------------------------------------------------------------------------------------

    def connection_info(self, base_url: str) -> dict[str, Any]:
        return {
            "authority": base_url,
            "tenant_id": self.ctx.tenant_id,
            "client_id": self.ctx.client_id,
            "client_secret": self.ctx.client_secret,
            "certificate_path": str(self.certificate_path),
        }

    def credential(
        self,
        base_url: str,
        ca_bundle: str,
        *,
        aio: bool = True,
        kind: Literal["secret", "certificate"] = "secret",
    ) -> Any:
        """A real azure-identity credential for the service principal, trusting the emulator's CA."""
        common: dict[str, Any] = {
            "authority": base_url,
            "disable_instance_discovery": True,
            "connection_verify": ca_bundle,
        }
        if aio:
            from azure.identity import aio as identity
        else:
            import azure.identity as identity  # type: ignore[no-redef]
        if kind == "certificate":
            return identity.CertificateCredential(
                self.ctx.tenant_id, self.ctx.client_id, certificate_path=str(self.certificate_path), **common
            )
        return identity.ClientSecretCredential(
            self.ctx.tenant_id, self.ctx.client_id, self.ctx.client_secret, **common
        )
