"""Pool operations through the real SDK: metadata merging, refresh requests, identity pools through ARM."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine_env import ACCOUNT, CALLER, SCALE, World, pool_spec

from reconciler.azure import markers, operations
from reconciler.azure.clients import AzureClients
from reconciler.azure.errors import ErrorKind
from reconciler.azure.observe import observe
from reconciler.emulator import Emulator
from reconciler.engine.cycle import Outcome
from reconciler.engine.executor import Engine
from reconciler.engine.wait import Pacing
from reconciler.plan.diff import make_plan
from reconciler.plan.rules import desired_markers
from reconciler.spec.config import Config


def names(metadata: list[dict[str, str]]) -> dict[str, str]:
    return {m["name"]: m["value"] for m in metadata}


async def test_patches_merge_our_markers_with_the_users_metadata(world: World) -> None:
    world.pools["m"] = pool_spec()
    desired = world.config().pools["m"]
    async with world.clients() as clients:
        await operations.create_pool(clients, ACCOUNT, "m", desired, desired_markers(desired))
        at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
        await operations.request_refresh(clients, ACCOUNT, "m", at)
        after_request = names(world.sim_pool("m").spec["metadata"])
        await operations.patch_pool(
            clients,
            ACCOUNT,
            "m",
            {"metadata": [{"name": "team", "value": "ops"}]},
            ours={"reconciler.x": "1"},
        )
        after_patch = names(world.sim_pool("m").spec["metadata"])
        await operations.patch_pool(clients, ACCOUNT, "m", ours={markers.REFRESH_REQUESTED_AT: None})
        cleared = names(world.sim_pool("m").spec["metadata"])
    assert after_request["team"] == "research"
    assert after_request[markers.REFRESH_REQUESTED_AT] == "2030-01-02T03:04:05Z"
    assert after_request[markers.SPEC_HASH] == desired_markers(desired)[markers.SPEC_HASH]
    assert after_patch["team"] == "ops"
    assert after_patch["reconciler.x"] == "1"
    assert after_patch[markers.REFRESH_REQUESTED_AT] == "2030-01-02T03:04:05Z"
    assert markers.REFRESH_REQUESTED_AT not in cleared
    assert cleared["team"] == "ops"


async def test_state_conflicts_are_classified_and_gone_pools_are_none(world: World) -> None:
    world.pools["c"] = pool_spec()
    desired = world.config().pools["c"]
    async with world.clients() as clients:
        assert await operations.get_pool(clients, ACCOUNT, "c") is None
        await operations.create_pool(clients, ACCOUNT, "c", desired, desired_markers(desired))
        try:
            await operations.resize_pool(
                clients, ACCOUNT, "c", target_dedicated_nodes=1, target_low_priority_nodes=0
            )
        except operations.OperationFailed as failed:
            resizing = failed
        await operations.delete_pool(clients, ACCOUNT, "c")
        await operations.delete_pool(clients, ACCOUNT, "c")
        observed = await operations.get_pool(clients, ACCOUNT, "c")
    assert resizing.kind is ErrorKind.STATE
    assert resizing.code == "PoolBeingResized"
    assert observed is not None
    assert observed.state == "deleting"


def test_request_time_never_precedes_the_pools_own_clock() -> None:
    class Seen:
        last_modified = datetime(2030, 1, 1, tzinfo=UTC)
        creation_time = datetime(2029, 1, 1, tzinfo=UTC)

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert operations.request_time(Seen(), now) > Seen.last_modified  # type: ignore[arg-type]
    later = datetime(2031, 1, 1, tzinfo=UTC)
    assert operations.request_time(Seen(), later) == later  # type: ignore[arg-type]


async def test_a_pool_with_identities_is_created_through_arm(emu: Emulator) -> None:
    identity = emu.connection["identity"]
    sub = emu.ctx.subscription_id
    group = emu.ctx.accounts[ACCOUNT].resource_group
    uai = (
        f"/subscriptions/{sub}/resourceGroups/rg-ids"
        "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1"
    )
    config = Config.model_validate(
        {
            "azure": {
                "arm_endpoint": emu.arm_url,
                "authority": identity["authority"],
                "ca_bundle": emu.connection["ca_bundle"],
                "auth": {
                    "method": "client_secret",
                    "tenant_id": identity["tenant_id"],
                    "client_id": identity["client_id"],
                    "client_secret": identity["client_secret"],
                },
            },
            "accounts": {
                ACCOUNT: {
                    "batch_url": emu.batch_url(ACCOUNT),
                    "subscription_id": sub,
                    "resource_group": group,
                    "account_name": ACCOUNT,
                    "auth": {"method": "shared_key", "key": emu.account_key(ACCOUNT)},
                }
            },
            "pools": {
                "ided": pool_spec(identity={"user_assigned_identities": [uai]}, target_dedicated_nodes=1)
            },
        }
    )
    async with AzureClients(config, caller=CALLER, client_options={"retry_total": 0}) as clients:
        engine = Engine(clients, pacing=Pacing(time_scale=SCALE))
        result = await engine.runner(ACCOUNT, "ided", config.pools["ided"]).run()
        snapshot = await observe(clients)
        ours = desired_markers(config.pools["ided"])
        again = await operations.create_pool(clients, ACCOUNT, "ided", config.pools["ided"], ours)
    assert result.outcome is Outcome.DONE, result.detail
    pool: Any = emu.batch.pool(ACCOUNT, "ided")
    assert pool.identity is not None
    assert uai in str(pool.identity)
    metadata = names(pool.spec["metadata"])
    assert metadata[markers.SPEC_HASH] == desired_markers(config.pools["ided"])[markers.SPEC_HASH]
    assert make_plan(config, snapshot, now=snapshot.observed_at).in_sync
    assert again is operations.CreateOutcome.ADOPTED
