"""make_plan on hand-built snapshots: each field class, the safety guards, and the pool states."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from types import MappingProxyType
from typing import Any

import pytest
from plan_env import (
    CREATED,
    NOW,
    autoscale_spec,
    config,
    observed_from,
    quota_error,
    snapshot,
    spec,
    unmanaged,
    unreachable_error,
    with_metadata,
    with_view,
)

from reconciler.plan.actions import ActionKind, Backoff, ChangeRule, Plan, PoolState
from reconciler.plan.diff import make_plan
from reconciler.plan.hashing import spec_hash
from reconciler.spec.pool import Pool
from reconciler.spec.secrets import Secret


def plan_one(desired: Pool, observed: Any, **kwargs: Any) -> Plan:
    pools = () if observed is None else (observed,)
    return make_plan(config({"p1": desired}), snapshot(*pools), now=NOW, **kwargs)


def kinds(plan: Plan) -> list[ActionKind]:
    return [a.kind for a in plan.actions]


def held_kinds(plan: Plan) -> list[tuple[ActionKind, str]]:
    return [(h.action.kind, h.reason) for h in plan.held]


def test_in_sync_pool_plans_nothing() -> None:
    desired = spec()
    plan = plan_one(desired, observed_from(desired))
    assert plan.in_sync
    assert plan.actions == ()
    assert [s.state for s in plan.statuses] == [PoolState.in_sync]


def test_missing_pool_is_created() -> None:
    desired = spec()
    plan = plan_one(desired, None)
    assert kinds(plan) == [ActionKind.create]
    assert ("vm_size", None, "standard_d2s_v3") in [(c.path, c.old, c.new) for c in plan.actions[0].changes]
    assert plan.actions[0].desired == desired
    assert plan.statuses[0].state == PoolState.missing
    assert not plan.in_sync


def test_id_matches_case_insensitively() -> None:
    desired = spec()
    plan = plan_one(desired, observed_from(desired, pool_id="P1"))
    assert plan.in_sync


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("start_task", {"command_line": "echo new"}, "start_task.command_line"),
        ("metadata", [{"name": "team", "value": "b"}], "metadata[0].value"),
        ("target_node_communication_mode", "simplified", "target_node_communication_mode"),
        (
            "application_package_references",
            [{"application_id": "tool", "version": "2"}],
            "application_package_references[0].version",
        ),
    ],
)
def test_any_time_fields_are_patched(field: str, value: Any, path: str) -> None:
    before = {
        "start_task": {"command_line": "echo old"},
        "metadata": [{"name": "team", "value": "a"}],
        "target_node_communication_mode": "classic",
        "application_package_references": [{"application_id": "tool", "version": "1"}],
    }[field]
    observed = observed_from(spec(**{field: before}))
    desired = spec(**{field: value})
    plan = plan_one(desired, observed)
    assert kinds(plan) == [ActionKind.patch]
    changes = {c.path: c for c in plan.actions[0].changes}
    assert changes[path].rule == ChangeRule.patch
    assert changes["metadata.reconciler.spec-hash"].new == spec_hash(desired)
    assert plan.statuses[0].state == PoolState.drifted


@pytest.mark.parametrize(
    ("field", "old", "new"),
    [
        ("vm_size", "standard_d2s_v3", "standard_d4s_v3"),
        ("task_slots_per_node", 2, 4),
        ("enable_inter_node_communication", None, True),
        ("task_scheduling_policy", {"node_fill_type": "spread"}, {"node_fill_type": "pack"}),
        (
            "user_accounts",
            None,
            [{"name": "runner", "password": Secret("pw", reference="${env:RUNNER_PW}")}],
        ),
        ("resource_tags", {"team": "a"}, {"team": "b"}),
        ("display_name", "old", "new"),
        (
            "identity",
            None,
            {
                "user_assigned_identities": [
                    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg"
                    "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1"
                ]
            },
        ),
    ],
)
def test_empty_pool_fields_refresh(field: str, old: Any, new: Any) -> None:
    observed = observed_from(spec(**{field: old}))
    plan = plan_one(spec(**{field: new}), observed)
    assert kinds(plan) == [ActionKind.refresh]
    action = plan.actions[0]
    assert {c.rule for c in action.changes} == {ChangeRule.recreate}
    assert any(c.path.startswith(field) for c in action.changes)
    assert plan.statuses[0].state == PoolState.refreshing
    assert plan.statuses[0].phase == "draining"


def test_refresh_carries_every_change_and_nothing_else_runs_beside_it() -> None:
    observed = observed_from(spec(vm_size="standard_d2s_v3", start_task={"command_line": "a"}))
    desired = spec(vm_size="standard_d8s_v3", start_task={"command_line": "b"}, target_dedicated_nodes=5)
    plan = plan_one(desired, observed)
    assert kinds(plan) == [ActionKind.refresh]
    rules = {c.path: c.rule for c in plan.actions[0].changes}
    assert rules["vm_size"] == ChangeRule.recreate
    assert rules["start_task.command_line"] == ChangeRule.patch
    assert rules["target_dedicated_nodes"] == ChangeRule.scale


def test_out_of_band_resize_is_resized_back() -> None:
    desired = spec(target_dedicated_nodes=2)
    observed = with_view(
        observed_from(desired, target_dedicated_nodes=7, current_dedicated_nodes=7),
        target_dedicated_nodes=7,
    )
    plan = plan_one(desired, observed)
    assert kinds(plan) == [ActionKind.resize]
    (change,) = plan.actions[0].changes
    assert (change.path, change.old, change.new, change.rule) == ("target_dedicated_nodes", 7, 2, "scale")


def test_spec_size_change_resizes_and_updates_the_hash_first() -> None:
    observed = observed_from(spec(target_dedicated_nodes=2))
    plan = plan_one(spec(target_dedicated_nodes=4), observed)
    assert kinds(plan) == [ActionKind.patch, ActionKind.resize]
    assert [c.path for c in plan.actions[0].changes] == ["metadata.reconciler.spec-hash"]
    assert plan.actions[0].reason == "markers out of date"


def test_resize_timeout_is_scale_on_fixed_pools() -> None:
    observed = observed_from(spec(resize_timeout="PT20M"))
    plan = plan_one(spec(resize_timeout="PT30M"), observed)
    assert kinds(plan) == [ActionKind.patch, ActionKind.resize]
    assert [c.path for c in plan.actions[1].changes] == ["resize_timeout"]


def test_autoscale_turned_on() -> None:
    observed = observed_from(spec())
    plan = plan_one(autoscale_spec(), observed)
    assert kinds(plan) == [ActionKind.patch, ActionKind.enable_autoscale]


def test_autoscale_formula_changed_is_updated_in_place() -> None:
    observed = observed_from(autoscale_spec("$TargetDedicatedNodes = 1;"))
    plan = plan_one(autoscale_spec("$TargetDedicatedNodes = 2;"), observed)
    assert kinds(plan) == [ActionKind.patch, ActionKind.enable_autoscale]
    assert [c.path for c in plan.actions[1].changes] == ["auto_scale_formula"]


def test_autoscale_turned_off_disables_then_sizes() -> None:
    observed = observed_from(autoscale_spec())
    plan = plan_one(spec(target_dedicated_nodes=1), observed)
    assert kinds(plan) == [ActionKind.patch, ActionKind.disable_autoscale, ActionKind.resize]
    resize = plan.actions[2]
    assert [(c.path, c.old, c.new) for c in resize.changes] == [("target_dedicated_nodes", 3, 1)]


def test_autoscale_pool_at_a_formula_size_is_in_sync() -> None:
    desired = autoscale_spec()
    observed = observed_from(desired, target_dedicated_nodes=9, current_dedicated_nodes=9)
    assert plan_one(desired, observed).in_sync


def test_portal_edit_is_caught_even_with_the_right_hash() -> None:
    desired = spec(start_task={"command_line": "echo ok"})
    observed = with_view(observed_from(desired), start_task={"command_line": "echo edited"})
    plan = plan_one(desired, observed)
    assert kinds(plan) == [ActionKind.patch]
    (change,) = plan.actions[0].changes
    assert (change.old, change.new) == ("echo edited", "echo ok")


def test_changed_secret_reference_in_an_any_time_field_is_patched() -> None:
    def with_sas(name: str, value: str) -> Pool:
        files = [{"http_url": Secret(value, reference=f"${{env:{name}}}"), "file_path": "x"}]
        return spec(start_task={"command_line": "run", "resource_files": files})

    old, new = with_sas("SAS_A", "https://a.blob/x?sig=aaa"), with_sas("SAS_B", "https://a.blob/x?sig=bbb")
    plan = plan_one(new, observed_from(old))
    assert kinds(plan) == [ActionKind.patch]
    paths = {c.path: c for c in plan.actions[0].changes}
    assert paths["start_task"].old == "(not returned by the service)"
    assert "metadata.reconciler.secret-digests" in paths
    assert "sig=" not in repr(plan.actions[0].changes)


def with_password(name: str) -> Pool:
    secret = Secret(f"value-of-{name}", reference=f"${{env:{name}}}")
    return spec(user_accounts=[{"name": "runner", "password": secret}])


def test_changed_secret_reference_in_an_empty_pool_field_refreshes() -> None:
    plan = plan_one(with_password("PW_B"), observed_from(with_password("PW_A")))
    assert kinds(plan) == [ActionKind.refresh]
    assert [c.path for c in plan.actions[0].changes] == ["user_accounts"]


def test_hash_only_difference_without_digests_is_blamed_on_the_secret_fields() -> None:
    observed = with_metadata(observed_from(with_password("PW_A")), reconciler__secret_digests=None)
    plan = plan_one(with_password("PW_B"), observed)
    assert kinds(plan) == [ActionKind.refresh]


def test_same_secret_reference_is_in_sync() -> None:
    plan = plan_one(with_password("PW_A"), observed_from(with_password("PW_A")))
    assert plan.in_sync


def test_stale_hash_alone_only_rewrites_the_markers() -> None:
    desired = spec()
    observed = with_metadata(observed_from(desired), reconciler__spec_hash="0" * 64)
    observed = replace(observed, spec_hash="0" * 64)
    plan = plan_one(desired, observed)
    assert kinds(plan) == [ActionKind.patch]
    assert [c.path for c in plan.actions[0].changes] == ["metadata.reconciler.spec-hash"]


def test_requested_refresh_is_the_only_action() -> None:
    desired = spec(target_dedicated_nodes=3)
    observed = observed_from(spec(), refresh_requested_at=NOW - timedelta(minutes=5))
    plan = plan_one(desired, observed)
    assert kinds(plan) == [ActionKind.refresh]
    assert plan.statuses[0].state == PoolState.refreshing
    assert plan.statuses[0].phase == "draining"


def test_refresh_done_once_created_after_the_request() -> None:
    desired = spec()
    observed = observed_from(desired, refresh_requested_at=CREATED - timedelta(hours=1))
    assert plan_one(desired, observed).in_sync


def test_pool_being_deleted_is_refreshing() -> None:
    desired = spec()
    plan = plan_one(desired, observed_from(desired, state="deleting"))
    assert kinds(plan) == [ActionKind.refresh]
    assert plan.statuses[0].phase == "deleting"


def test_pool_still_allocating_is_left_alone() -> None:
    desired = spec(target_dedicated_nodes=4)
    observed = observed_from(desired, allocation_state="resizing", current_dedicated_nodes=1)
    assert plan_one(desired, observed).in_sync


def test_quota_error_degrades_and_retries_the_resize_never_refreshes() -> None:
    desired = spec(target_dedicated_nodes=4)
    observed = quota_error(observed_from(desired), current=1)
    plan = plan_one(desired, observed)
    assert kinds(plan) == [ActionKind.resize]
    assert "AccountCoreQuotaReached" in plan.actions[0].reason
    assert plan.statuses[0].state == PoolState.degraded


def test_degraded_resize_is_held_until_the_backoff_ends() -> None:
    desired = spec(target_dedicated_nodes=4)
    observed = quota_error(observed_from(desired), current=1)
    later = NOW + timedelta(minutes=10)
    plan = plan_one(desired, observed, backoff_until={("demo", "p1"): later})
    assert plan.actions == ()
    assert held_kinds(plan) == [(ActionKind.resize, f"degraded: backing off until {later.isoformat()}")]
    assert plan.statuses[0].state == PoolState.degraded
    after = plan_one(desired, observed, backoff_until={("demo", "p1"): NOW - timedelta(seconds=1)})
    assert kinds(after) == [ActionKind.resize]


def test_degraded_pool_with_a_new_size_holds_that_resize_too() -> None:
    observed = quota_error(observed_from(spec(target_dedicated_nodes=4)), current=1)
    plan = plan_one(
        spec(target_dedicated_nodes=6), observed, backoff_until={("demo", "p1"): NOW + timedelta(hours=1)}
    )
    assert plan.actions == ()
    assert [k for k, _ in held_kinds(plan)] == [ActionKind.patch, ActionKind.resize]


@pytest.mark.parametrize(
    ("observed", "desired", "kind"),
    [
        (None, spec(), ActionKind.create),
        (observed_from(spec()), spec(vm_size="standard_d4s_v3"), ActionKind.refresh),
        (observed_from(spec()), spec(start_task={"command_line": "echo new"}), ActionKind.patch),
        (observed_from(spec()), spec(target_dedicated_nodes=7), ActionKind.resize),
    ],
)
def test_every_action_of_a_pool_in_backoff_is_held_with_the_failure_and_the_retry_time(
    observed: Any, desired: Pool, kind: ActionKind
) -> None:
    until = NOW + timedelta(minutes=4)
    pause = Backoff(until, "create p1: PoolQuotaReached")
    plan = plan_one(desired, observed, backoff_until={("demo", "p1"): pause})
    free = kinds(plan_one(desired, observed))
    assert free[-1] is kind
    assert plan.actions == ()
    reason = f"backing off until {until.isoformat()} after: create p1: PoolQuotaReached"
    assert held_kinds(plan) == [(k, reason) for k in free]
    assert not plan.in_sync
    assert kinds(plan_one(desired, observed, backoff_until={("demo", "p1"): Backoff(NOW)})) == free
    assert kinds(plan_one(desired, observed, backoff_until={("demo", "other"): pause})) == free


def test_an_orphan_in_backoff_is_not_deleted_and_does_not_count_against_the_limit() -> None:
    gone = replace(observed_from(spec()), pool_id="gone")
    also = replace(observed_from(spec()), pool_id="also")
    pause = {("demo", "also"): Backoff(NOW + timedelta(minutes=1), "delete also: boom")}
    plan = make_plan(config({}, prune=True), snapshot(gone, also), now=NOW, backoff_until=pause)
    assert [(a.kind, a.pool_id) for a in plan.actions] == [(ActionKind.delete, "gone")]
    assert [(h.action.pool_id, h.reason.split(" after: ")[1]) for h in plan.held] == [
        ("also", "delete also: boom")
    ]


def test_suspended_pool_holds_every_action() -> None:
    observed = observed_from(spec(vm_size="standard_d2s_v3"))
    plan = plan_one(spec(vm_size="standard_d4s_v3", suspend=True), observed)
    assert plan.actions == ()
    assert held_kinds(plan) == [(ActionKind.refresh, "suspend: true")]
    assert plan.statuses[0].state == PoolState.suspended
    assert not plan.in_sync


def test_suspended_missing_pool_is_not_created() -> None:
    plan = plan_one(spec(suspend=True), None)
    assert plan.actions == ()
    assert held_kinds(plan) == [(ActionKind.create, "suspend: true")]


def test_deletion_protection_holds_a_recreating_refresh() -> None:
    observed = observed_from(spec(vm_size="standard_d2s_v3"))
    plan = plan_one(spec(vm_size="standard_d4s_v3", deletion_protection=True), observed)
    assert plan.actions == ()
    assert held_kinds(plan) == [(ActionKind.refresh, "deletion_protection: a refresh would delete the pool")]
    assert plan.statuses[0].state == PoolState.drifted
    assert "held: deletion_protection" in plan.statuses[0].detail


def test_deletion_protection_allows_a_refresh_that_patches_when_empty() -> None:
    observed = observed_from(spec(vm_size="standard_d2s_v3"))
    desired = spec(
        vm_size="standard_d4s_v3", deletion_protection=True, refresh={"strategy": "patch-when-empty"}
    )
    plan = plan_one(desired, observed)
    assert kinds(plan) == [ActionKind.refresh]
    assert "drain and patch" in plan.actions[0].reason


def test_deletion_protection_flag_is_mirrored_into_metadata() -> None:
    observed = observed_from(spec())
    plan = plan_one(spec(deletion_protection=True), observed)
    assert kinds(plan) == [ActionKind.patch]
    changes = {c.path: c for c in plan.actions[0].changes}
    assert changes["metadata.reconciler.deletion-protection"].new == "true"


def test_unreachable_account_reports_and_plans_nothing() -> None:
    plan = make_plan(config({"p1": spec()}), snapshot(error=unreachable_error()), now=NOW)
    assert plan.actions == ()
    assert plan.held == ()
    (status,) = plan.statuses
    assert status.state == PoolState.unreachable
    assert "connection refused" in status.detail


def test_unmanaged_pool_is_never_touched_even_when_declared() -> None:
    observed = unmanaged(observed_from(spec(vm_size="standard_d2s_v3")))
    plan = plan_one(spec(vm_size="standard_d4s_v3"), observed)
    assert plan.actions == ()
    assert held_kinds(plan) == [(ActionKind.refresh, "unmanaged pool (no reconciler.managed-by marker)")]
    assert plan.statuses[0].state == PoolState.unmanaged


def test_declared_unmanaged_pool_that_matches_is_in_sync() -> None:
    desired = spec()
    plan = plan_one(desired, unmanaged(observed_from(desired)))
    assert plan.in_sync
    assert plan.statuses[0].state == PoolState.unmanaged


def test_pool_with_our_hash_but_no_marker_is_adopted() -> None:
    desired = spec()
    observed = replace(unmanaged(observed_from(desired)), spec_hash=spec_hash(desired))
    plan = plan_one(desired, observed)
    assert kinds(plan) == [ActionKind.adopt]


def test_undeclared_unmanaged_pool_is_only_reported() -> None:
    other = unmanaged(observed_from(spec(), pool_id="theirs"))
    plan = make_plan(config({}, prune=True), snapshot(other), now=NOW)
    assert plan.in_sync
    assert [(s.pool_id, s.state) for s in plan.statuses] == [("theirs", PoolState.unmanaged)]


def test_orphan_is_not_deleted_while_prune_is_off_by_default() -> None:
    plan = make_plan(config({}), snapshot(observed_from(spec(), pool_id="old")), now=NOW)
    assert plan.actions == ()
    assert held_kinds(plan) == [(ActionKind.delete, "safety.prune is off")]
    assert plan.statuses[0].state == PoolState.orphaned


def test_prune_deletes_at_most_max_deletions_per_run() -> None:
    orphans = [observed_from(spec(), pool_id=f"old{i}") for i in range(4)]
    plan = make_plan(config({}, prune=True, max_deletions_per_run=2), snapshot(*orphans), now=NOW)
    assert [(a.kind, a.pool_id) for a in plan.actions] == [
        (ActionKind.delete, "old0"),
        (ActionKind.delete, "old1"),
    ]
    assert held_kinds(plan) == [(ActionKind.delete, "safety.max_deletions_per_run (2) reached")] * 2


def test_protected_orphan_is_never_pruned() -> None:
    protected = observed_from(spec(deletion_protection=True), pool_id="keep")
    plain = observed_from(spec(), pool_id="zap")
    plan = make_plan(config({}, prune=True), snapshot(protected, plain), now=NOW)
    assert [(a.kind, a.pool_id) for a in plan.actions] == [(ActionKind.delete, "zap")]
    assert [(h.action.pool_id, h.reason) for h in plan.held] == [
        ("keep", "deletion protection (pool metadata reconciler.deletion-protection)")
    ]


def test_orphan_being_deleted_is_not_deleted_again() -> None:
    gone = observed_from(spec(), pool_id="old", state="deleting")
    plan = make_plan(config({}, prune=True), snapshot(gone), now=NOW)
    assert plan.actions == ()
    assert plan.statuses[0].phase == "deleting"


def test_plan_is_deterministic() -> None:
    desired = {"b": spec(), "a": spec(vm_size="standard_d8s_v3")}
    observed = [observed_from(spec(), pool_id="a"), observed_from(spec(), pool_id="zz")]
    first = make_plan(config(desired, prune=True), snapshot(*observed), now=NOW)
    second = make_plan(config(dict(reversed(desired.items())), prune=True), snapshot(*observed), now=NOW)
    assert first == second
    assert [s.pool_id for s in first.statuses] == ["a", "b", "zz"]


def foreign(desired: Pool) -> Any:
    """The pool as someone else built it: same properties, the user's metadata, none of our markers."""
    return observed_from(desired, metadata=MappingProxyType({"team": "data"}), managed=False, spec_hash=None)


def test_adopt_true_adopts_a_matching_pool_without_our_marker() -> None:
    desired = spec(adopt=True)
    plan = plan_one(desired, foreign(desired))
    assert kinds(plan) == [ActionKind.adopt]
    assert plan.actions[0].changes == ()
    assert plan.actions[0].reason == "adopt: true and the pool matches the spec"
    assert plan.held == ()


def test_adopt_true_holds_a_drifted_pool_naming_the_fields_and_changes_nothing() -> None:
    observed = foreign(spec(target_dedicated_nodes=2))
    desired = spec(adopt=True, target_dedicated_nodes=5, start_task={"command_line": "echo other"})
    plan = plan_one(desired, observed)
    assert plan.actions == ()
    ((kind, reason),) = held_kinds(plan)
    assert kind is ActionKind.adopt
    assert reason == "not adopted: differs from the spec in start_task, target_dedicated_nodes"
    assert plan.statuses[0].state == PoolState.unmanaged
    assert "start_task, target_dedicated_nodes" in plan.statuses[0].detail


def test_without_adopt_a_matching_foreign_pool_stays_unmanaged() -> None:
    desired = spec()
    plan = plan_one(desired, foreign(desired))
    assert plan.in_sync
    assert plan.statuses[0].state == PoolState.unmanaged


def test_adopt_is_held_while_suspended_or_backing_off_and_ignored_for_our_own_pools() -> None:
    desired = spec(adopt=True)
    assert held_kinds(plan_one(spec(adopt=True, suspend=True), foreign(desired))) == [
        (ActionKind.adopt, "suspend: true")
    ]
    pause = {("demo", "p1"): Backoff(NOW + timedelta(minutes=1), "adopt p1: precondition")}
    assert [k for k, _ in held_kinds(plan_one(desired, foreign(desired), backoff_until=pause))] == [
        ActionKind.adopt
    ]
    assert plan_one(desired, observed_from(spec())).in_sync


def test_adopt_is_not_azure_state() -> None:
    assert spec_hash(spec(adopt=True)) == spec_hash(spec())
    assert spec(adopt=True).to_batch_json("p1") == spec().to_batch_json("p1")


def test_adopt_true_never_adopts_a_pool_being_deleted() -> None:
    desired = spec(adopt=True)
    plan = plan_one(desired, replace(foreign(desired), state="deleting"))
    assert plan.actions == ()
    assert held_kinds(plan) == [(ActionKind.adopt, "not adopted: the pool is deleting")]
