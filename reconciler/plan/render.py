"""Plans and statuses as text for people and JSON for scripts; nothing here decides anything.

Plan JSON (`plan_json`), schema version 1; keys are always present, lists sorted as planned:
```
{"version": 1,
 "in_sync": bool,
 "summary": {"actions": int, "held": int, "by_kind": {"<kind>": int}, "in_sync_pools": int},
 "actions": [{"kind": str, "account": str, "pool_id": str, "reason": str,
              "changes": [{"path": str, "old": any|null, "new": any|null, "rule": "patch|scale|recreate"}]}],
 "held": [<action as above> + {"held_because": str}],
 "pools": [{"account": str, "pool_id": str, "state": str, "phase": str|null, "detail": str}]}
```
Status JSON (`status_json`), schema version 1:
```
{"version": 1,
 "pools": [{"account", "pool_id", "state", "phase", "detail",
            "pool_state": str|null, "allocation_state": str|null,
            "nodes": {"dedicated": {"<state>": int}, "low_priority": {"<state>": int}},
            "target": {"dedicated": int, "low_priority": int} | null,
            "enable_auto_scale": bool|null,
            "created": iso8601|null, "refresh_requested_at": iso8601|null,
            "resize_errors": [{"code": str, "message": str}]}]}
```
`null` in a change means the property is absent on that side. Secrets never reach the output: change
values come from secret-free views, a `Secret` prints as its `${env:..}` reference or the mask, and any
string holding a value revealed in this process is masked as a last guard.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from reconciler.azure.snapshot import NodeCounts, ObservedPool
from reconciler.plan.actions import FieldChange, Plan, PoolAction, PoolState, PoolStatus
from reconciler.spec.secrets import MASK, Secret, revealed_values

SCHEMA_VERSION = 1
ARROW = "→"


def safe(value: Any) -> Any:
    """The value with secrets shown as their reference or the mask, recursively."""
    if isinstance(value, Secret):
        return value.display()
    if isinstance(value, str):
        return MASK if any(s in value for s in revealed_values()) else value
    if isinstance(value, Mapping):
        return {str(k): safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe(v) for v in value]
    return value


def _change_json(change: FieldChange) -> dict[str, Any]:
    return {"path": change.path, "old": safe(change.old), "new": safe(change.new), "rule": str(change.rule)}


def _action_json(action: PoolAction) -> dict[str, Any]:
    return {
        "kind": str(action.kind),
        "account": action.account,
        "pool_id": action.pool_id,
        "reason": safe(action.reason),
        "changes": [_change_json(c) for c in action.changes],
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "version": SCHEMA_VERSION,
        "in_sync": plan.in_sync,
        "summary": {
            "actions": len(plan.actions),
            "held": len(plan.held),
            "by_kind": dict(sorted(Counter(str(a.kind) for a in plan.actions).items())),
            "in_sync_pools": sum(s.state == PoolState.in_sync for s in plan.statuses),
        },
        "actions": [_action_json(a) for a in plan.actions],
        "held": [{**_action_json(h.action), "held_because": h.reason} for h in plan.held],
        "pools": [
            {
                "account": s.account,
                "pool_id": s.pool_id,
                "state": str(s.state),
                "phase": s.phase,
                "detail": safe(s.detail),
            }
            for s in plan.statuses
        ],
    }


def _value(value: Any) -> str:
    if value is None:
        return "(absent)"
    shown = safe(value)
    if isinstance(shown, str) and shown.startswith("(") and shown.endswith(")"):
        return shown
    return json.dumps(shown, ensure_ascii=False, sort_keys=True)


def _change_lines(changes: Sequence[FieldChange]) -> list[str]:
    return [f"      {c.path}: {_value(c.old)} {ARROW} {_value(c.new)} [{c.rule}]" for c in changes]


def plan_text(plan: Plan) -> str:
    lines: list[str] = []
    for action in plan.actions:
        lines.append(f"  {action.kind:<17} {action.account}/{action.pool_id}: {safe(action.reason)}")
        lines.extend(_change_lines(action.changes))
    if plan.held:
        lines.append("Held:")
        for held in plan.held:
            action = held.action
            lines.append(
                f"  {action.kind:<17} {action.account}/{action.pool_id}: {safe(action.reason)}"
                f" (held: {held.reason})"
            )
            lines.extend(_change_lines(action.changes))
    for status in plan.statuses:
        if status.state in (PoolState.unmanaged, PoolState.unreachable):
            lines.append(f"  note {status.account}/{status.pool_id}: {status.state}: {safe(status.detail)}")
    lines.append(_summary(plan))
    return "\n".join(lines) + "\n"


def _summary(plan: Plan) -> str:
    in_sync = sum(s.state == PoolState.in_sync for s in plan.statuses)
    if plan.in_sync:
        return f"No changes: {len(plan.statuses)} pool(s) observed, {in_sync} in sync."
    kinds = Counter(str(a.kind) for a in plan.actions)
    detail = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    pending = f"{len(plan.actions)} action(s)" + (f" ({detail})" if detail else "")
    return f"Plan: {pending}, {len(plan.held)} held, {in_sync} pool(s) in sync."


def _counts(counts: NodeCounts) -> dict[str, int]:
    return dict(sorted((k, v) for k, v in counts.states.items() if v))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _status_row(status: PoolStatus) -> dict[str, Any]:
    observed: ObservedPool | None = status.observed
    row: dict[str, Any] = {
        "account": status.account,
        "pool_id": status.pool_id,
        "state": str(status.state),
        "phase": status.phase,
        "detail": safe(status.detail),
        "pool_state": None,
        "allocation_state": None,
        "nodes": {"dedicated": {}, "low_priority": {}},
        "target": None,
        "enable_auto_scale": None,
        "created": None,
        "refresh_requested_at": None,
        "resize_errors": [],
    }
    if observed is not None:
        row.update(
            pool_state=observed.state,
            allocation_state=observed.allocation_state,
            nodes={
                "dedicated": _counts(observed.dedicated_nodes),
                "low_priority": _counts(observed.low_priority_nodes),
            },
            target={
                "dedicated": observed.target_dedicated_nodes,
                "low_priority": observed.target_low_priority_nodes,
            },
            enable_auto_scale=observed.enable_auto_scale,
            created=_iso(observed.creation_time),
            refresh_requested_at=_iso(observed.refresh_requested_at),
            resize_errors=[{"code": e.code, "message": safe(e.message)} for e in observed.resize_errors],
        )
    return row


def status_json(statuses: Sequence[PoolStatus]) -> dict[str, Any]:
    return {"version": SCHEMA_VERSION, "pools": [_status_row(s) for s in statuses]}


_COLUMNS = ("ACCOUNT", "POOL", "STATE", "ALLOCATION", "NODES", "CREATED", "REFRESH REQUESTED", "ERRORS")


def _nodes_cell(row: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for priority, label in (("dedicated", ""), ("low_priority", "lp ")):
        parts.extend(f"{label}{state}={n}" for state, n in row["nodes"][priority].items())
    target = row["target"]
    if target is not None and not row["enable_auto_scale"]:
        parts.append(f"(target {target['dedicated']}+{target['low_priority']})")
    elif row["enable_auto_scale"]:
        parts.append("(autoscale)")
    return " ".join(parts) or "-"


def status_text(statuses: Sequence[PoolStatus]) -> str:
    rows = [_status_row(s) for s in statuses]
    table = [list(_COLUMNS)]
    for row in rows:
        state = row["state"] + (f" ({row['phase']})" if row["phase"] else "")
        table.append(
            [
                row["account"],
                row["pool_id"],
                state,
                row["allocation_state"] or "-",
                _nodes_cell(row),
                _minute(row["created"]),
                _minute(row["refresh_requested_at"]),
                ",".join(e["code"] for e in row["resize_errors"]) or "-",
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    details = [
        f"{r['account']}/{r['pool_id']}: {r['detail']}" for r in rows if r["state"] != str(PoolState.in_sync)
    ]
    if details:
        lines.append("")
        lines.extend(details)
    return "\n".join(lines) + "\n"


def _minute(iso: str | None) -> str:
    return iso[:16].replace("T", " ") if iso else "-"
