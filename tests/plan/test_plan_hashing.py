"""The spec hash and the secret digests: stable, sensitive to what Azure holds, blind to secret values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from plan_env import spec

from reconciler.plan.hashing import decode_digests, encode_digests, secret_digests, spec_hash
from reconciler.plan.rules import desired_markers
from reconciler.spec.secrets import Secret

HERE = Path(__file__).parent


def test_hash_is_stable_across_processes() -> None:
    code = (
        "from plan_env import spec; from reconciler.plan.hashing import spec_hash; print(spec_hash(spec()))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=HERE,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": "", "PYTHONPATH": str(HERE.parent)},  # for pool_spec_env
    )
    assert run.stdout.strip() == spec_hash(spec())
    assert len(spec_hash(spec())) == 64


def test_hash_follows_azure_facing_fields_only() -> None:
    base = spec_hash(spec())
    assert spec_hash(spec(vm_size="standard_d8s_v3")) != base
    assert spec_hash(spec(target_dedicated_nodes=3)) != base
    assert spec_hash(spec(suspend=True, deletion_protection=True, refresh={"schedule": "0 2 * * *"})) == base


def test_specs_that_mean_the_same_pool_hash_the_same() -> None:
    """A spec spelling out service defaults (as written by hand) and one leaving them out (as exported)."""
    plain = spec(start_task={"command_line": "x"})
    spelled = spec(start_task={"command_line": "x", "wait_for_success": True, "max_task_retry_count": 0})
    assert spec_hash(spelled) == spec_hash(plain)
    assert spec_hash(spec(start_task={"command_line": "x", "wait_for_success": False})) != spec_hash(plain)


def test_hash_sees_the_secret_reference_never_the_value() -> None:
    def with_password(value: str, reference: str | None) -> str:
        secret = Secret(value, reference=reference)
        return spec_hash(spec(user_accounts=[{"name": "u", "password": secret}]))

    assert with_password("one", "${env:A}") == with_password("two", "${env:A}")
    assert with_password("one", "${env:A}") != with_password("one", "${env:B}")


def test_digests_name_the_field_holding_the_secret() -> None:
    pool = spec(
        user_accounts=[{"name": "u", "password": Secret("pw", reference="${env:PW}")}],
        start_task={"command_line": "x"},
    )
    digests = secret_digests(pool)
    assert set(digests) == {"user_accounts"}
    assert decode_digests(encode_digests(digests)) == digests
    assert decode_digests(None) is None
    markers = desired_markers(pool)
    assert markers["reconciler.secret-digests"] == f"user_accounts={digests['user_accounts']}"
    assert "reconciler.secret-digests" not in desired_markers(spec())
