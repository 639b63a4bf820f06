"""Shared Key authentication exactly as the Batch service checks it.

The string to sign is rebuilt from the request as received (the SDK's `BatchSharedKeyAuthPolicy`):
verb, eleven standard headers, the sorted `ocp-*` headers, `/<account><path>` and the sorted, decoded
query parameters. The emulator's account URL is `http://host:port/<account>`, so the signed path already
starts with `/<account>/` and the resource reads `/<account>/<account>/pools`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qs

from reconciler.emulator.batch.errors import BatchServiceError

# The SDK's order, which is what it signs.
_SIGNED_ORDER = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


def string_to_sign(
    method: str, headers: Mapping[str, str], account: str, raw_path: str, raw_query: str
) -> str:
    lowered = {k.lower(): v for k, v in headers.items() if v}
    if method not in ("GET", "HEAD"):
        lowered.setdefault("content-length", "0")
    text = method + "\n" + "\n".join(lowered.get(h, "") for h in _SIGNED_ORDER) + "\n"
    ocp = sorted((k.lower(), v) for k, v in headers.items() if "ocp-" in k.lower() and v)
    text += "".join(f"{name}:{value}\n" for name, value in ocp)
    text += f"/{account}{raw_path}"
    query = parse_qs(raw_query)
    for name in sorted(query):
        value = query[name][0]
        if value:
            text += f"\n{name}:{value}"
    return text


def sign(key: str, text: str) -> str:
    digest = hmac.new(base64.b64decode(key), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def authentication_failed(detail: str) -> BatchServiceError:
    return BatchServiceError(
        403,
        "AuthenticationFailed",
        "Server failed to authenticate the request. Make sure the value of Authorization header is formed "
        "correctly including the signature.",
        {"AuthenticationErrorDetail": detail},
    )


def verify_shared_key(
    authorization: str,
    *,
    account: str,
    key: str,
    method: str,
    headers: Mapping[str, str],
    raw_path: str,
    raw_query: str,
) -> None:
    """Raise 403 `AuthenticationFailed` unless `authorization` signs this request with `key`."""
    scheme, _, credential = authorization.partition(" ")
    if scheme != "SharedKey" or ":" not in credential:
        raise authentication_failed("The authorization header is not a SharedKey signature.")
    name, _, signature = credential.strip().partition(":")
    if name != account:
        raise authentication_failed(f"The account name '{name}' does not match the account '{account}'.")
    text = string_to_sign(method, headers, account, raw_path, raw_query)
    try:
        expected = sign(key, text)
    except (binascii.Error, ValueError) as err:
        raise authentication_failed("The account key is not valid base64.") from err
    if hmac.compare_digest(expected, signature):
        return
    if headers.get("Content-Length") == "0" and method in ("GET", "HEAD"):
        # Some transports add `Content-Length: 0` after the client signed without it.
        stripped = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        retry = sign(key, string_to_sign(method, stripped, account, raw_path, raw_query))
        if hmac.compare_digest(retry, signature):
            return
    shown = text.replace("\n", "\\n")
    raise authentication_failed(
        f"The MAC signature found in the HTTP request '{signature}' is not the same as any computed "
        f"signature. Server used following string to sign: '{shown}'."
    )
