"""ARM resources as plain data, with lazily settled transitions on simulated time.

Nothing runs in the background: every request first calls `settle()`, which finishes the transitions whose
simulated deadline has passed. Only resources with a transition in flight are visited, so the cost of a
request does not grow with the number of resources.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from reconciler.emulator.clock import SimClock
from reconciler.emulator.context import DEFAULT_RESOURCE_GROUP

Resource = dict[str, Any]
META = "_meta"
TRANSITIONAL = ("Creating", "Updating", "Deleting")


def key_of(resource_id: str) -> str:
    return resource_id.lower().rstrip("/")


def public(resource: Resource) -> Resource:
    """The resource as ARM shows it: a deep copy without the emulator's bookkeeping."""
    return {k: copy.deepcopy(v) for k, v in resource.items() if k != META}


class ResourceStore:
    """Every ARM resource by lower-cased id, the resource groups, and the transitions still in flight."""

    def __init__(self, clock: SimClock, subscription_id: str, groups: list[str]) -> None:
        self.clock = clock
        self.subscription_id = subscription_id
        self.resources: dict[str, Resource] = {}
        self.groups: dict[str, str] = {g.lower(): g for g in [DEFAULT_RESOURCE_GROUP, *groups]}
        self.pending: set[str] = set()
        self.on_deleted: list[Callable[[Resource], None]] = []

    def group_id(self, resource_group: str) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}"

    def resource_id(self, resource_group: str, provider_type: str, name: str) -> str:
        return f"{self.group_id(resource_group)}/providers/{provider_type}/{name}"

    def has_group(self, resource_group: str) -> bool:
        return resource_group.lower() in self.groups

    def ensure_group(self, resource_group: str) -> None:
        self.groups.setdefault(resource_group.lower(), resource_group)

    def get(self, resource_id: str) -> Resource | None:
        return self.resources.get(key_of(resource_id))

    def put(self, resource: Resource) -> Resource:
        self.resources[key_of(resource["id"])] = resource
        if self._in_flight(resource):
            self.pending.add(key_of(resource["id"]))
        return resource

    def remove(self, resource_id: str) -> Resource | None:
        key = key_of(resource_id)
        self.pending.discard(key)
        resource = self.resources.pop(key, None)
        if resource is not None:
            for hook in self.on_deleted:
                hook(resource)
        return resource

    def track(self, resource: Resource) -> None:
        self.pending.add(key_of(resource["id"]))

    def of_type(self, resource_type: str, resource_group: str | None = None) -> Iterator[Resource]:
        prefix = (self.group_id(resource_group).lower() + "/") if resource_group else ""
        wanted = resource_type.lower()
        for key, resource in self.resources.items():
            if resource["type"].lower() == wanted and key.startswith(prefix):
                yield resource

    @staticmethod
    def meta(resource: Resource) -> dict[str, Any]:
        meta: dict[str, Any] = resource.setdefault(META, {})
        return meta

    @staticmethod
    def _in_flight(resource: Resource) -> bool:
        meta = resource.get(META, {})
        return bool(meta.get("ready_at") is not None or meta.get("power_at") is not None)

    def settle(self) -> None:
        """Finish every transition whose simulated deadline has passed."""
        if not self.pending:
            return
        now = self.clock.monotonic()
        for key in list(self.pending):
            resource = self.resources.get(key)
            if resource is None:
                self.pending.discard(key)
                continue
            meta = self.meta(resource)
            ready_at = meta.get("ready_at")
            if ready_at is not None and ready_at <= now:
                meta["ready_at"] = None
                if meta.pop("deleting", False):
                    self.remove(resource["id"])
                    continue
                resource["properties"]["provisioningState"] = meta.pop("final", "Succeeded")
            power_at = meta.get("power_at")
            if power_at is not None and power_at <= now:
                meta["power_at"] = None
                meta["power"] = meta.pop("power_target", meta.get("power"))
            if not self._in_flight(resource):
                self.pending.discard(key)

    def remaining(self, resource: Resource) -> float:
        """Simulated seconds until the resource's transitions end (0 when none is in flight)."""
        meta = resource.get(META, {})
        deadlines = [d for d in (meta.get("ready_at"), meta.get("power_at")) if d is not None]
        return max(0.0, max(deadlines, default=0.0) - self.clock.monotonic())

    def start_transition(
        self, resource: Resource, state: str, seconds: float, *, final: str = "Succeeded"
    ) -> None:
        meta = self.meta(resource)
        resource["properties"]["provisioningState"] = state
        meta["ready_at"] = self.clock.monotonic() + seconds
        meta["final"] = final
        self.track(resource)

    def start_delete(self, resource: Resource, seconds: float) -> None:
        meta = self.meta(resource)
        resource["properties"]["provisioningState"] = "Deleting"
        meta["ready_at"] = self.clock.monotonic() + seconds
        meta["deleting"] = True
        self.track(resource)

    def dump(self) -> dict[str, Any]:
        """Plain data; simulated deadlines are absolute `SimClock.monotonic()` readings, which persist too."""
        return {"resources": list(self.resources.values()), "groups": list(self.groups.values())}

    def load(self, data: dict[str, Any]) -> None:
        self.resources = {}
        self.pending = set()
        for group in data.get("groups", []):
            self.ensure_group(group)
        for resource in data.get("resources", []):
            self.put(resource)
