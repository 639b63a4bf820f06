"""The spec hash written into a pool at create, so a later pass knows which spec built it.

Field-by-field comparison cannot see what the service never returns (passwords, keys, SAS URLs), and a
pool does not record which config produced it; the hash closes both gaps. It is the sha256 of the
pool's comparable form (`comparable_pool`: what Azure would report, service defaults and empty values
left out) plus the digests of its secrets' references, serialised with sorted keys and no whitespace.
So two specs that mean the same pool (one spelling out a service default, one leaving it out, as an
`export` does) hash the same, in every process and on every run. Secrets enter it only as their display
form, the `${env:..}`/`${keyvault:..}` reference (a literal secret as the mask): changing a reference
changes the hash, while a new value behind the same reference does not — request a refresh for that.
The hash never carries a secret value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from reconciler.azure.rest import comparable_pool
from reconciler.spec.pool import Pool
from reconciler.spec.secrets import Secret


def spec_hash(pool: Pool) -> str:
    """The hex sha256 of what the pool means to Azure; the value of `reconciler.spec-hash`."""
    meaning = {"pool": comparable_pool(pool), "secrets": secret_digests(pool)}
    text = json.dumps(meaning, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def secret_digests(pool: Pool) -> dict[str, str]:
    """Per top-level field holding secrets, a short digest of those secrets' references (display forms).

    Written into the pool as `reconciler.secret-digests`, it tells which field a secret change is in,
    where the spec hash alone could only say that something not observable changed somewhere.
    """
    digests: dict[str, str] = {}
    for name in sorted(type(pool).model_fields):
        shown = [secret.display() for secret in _secrets(getattr(pool, name, None))]
        if shown:
            text = json.dumps(shown, separators=(",", ":"), ensure_ascii=True)
            digests[name] = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return digests


def secret_references(pool: Pool, field: str) -> list[str]:
    """How the secrets of one field may be shown: their references, or the mask for literal values."""
    return [secret.display() for secret in _secrets(getattr(pool, field, None))]


def encode_digests(digests: Mapping[str, str]) -> str:
    return ";".join(f"{name}={digest}" for name, digest in sorted(digests.items()))


def decode_digests(text: str | None) -> dict[str, str] | None:
    """The digests a pool carries, or None when it carries none (built before this marker existed)."""
    if text is None:
        return None
    pairs = (part.partition("=") for part in text.split(";") if part)
    return {name: digest for name, _, digest in pairs}


def _secrets(value: Any) -> Iterator[Secret]:
    if isinstance(value, Secret):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secrets(item)
    elif isinstance(value, dict):
        for key in sorted(value):
            yield from _secrets(value[key])
