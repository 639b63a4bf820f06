"""Checks that span sections of a validated config, run by the loader after `Config` validation.

Each section's model can only see itself; whether a pool's `account` exists or a cluster's vnet is in
its subscription needs the whole config. Problems carry the path of the key the user has to change, so
the loader points at its line like any validation error.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from reconciler.spec.cluster import Cluster, parse_arm_id
from reconciler.spec.config import Config
from reconciler.spec.pool import Pool


@dataclass(frozen=True)
class Problem:
    """One thing wrong, at the path (`("pools", "p1", "account")`) of the key to change."""

    path: tuple[str | int, ...]
    message: str


def cross_check(config: Config) -> list[Problem]:
    """Every cross-section problem in `config`, in config order; empty when it can be applied."""
    return [
        *_pool_accounts(config),
        *_identity_coordinates(config),
        *_identity_references(config),
        *_pool_subnets(config),
        *_duplicate_accounts(config),
        *_cluster_subscriptions(config),
        *_metrics_pairs(config),
    ]


def check_unvalidated(data: Any) -> list[Problem]:
    """The cross-section problems that can be told from the merged data when `Config` rejects it.

    Only the account references: they need nothing but names, whereas the other checks compare what
    the models make of a value (parsed ARM ids, normalised URLs, an identity's resource ids). A pool
    whose `account` is not a name is left to the model's own error.
    """
    accounts = data.get("accounts") if isinstance(data, dict) else None
    pools = data.get("pools") if isinstance(data, dict) else None
    if not isinstance(accounts, dict | None) or not isinstance(pools, dict):
        return []
    named = (
        (str(pool_id), pool["account"])
        for pool_id, pool in pools.items()
        if isinstance(pool, dict) and isinstance(pool.get("account"), str) and pool["account"].strip()
    )
    return list(_unknown_accounts([str(name) for name in accounts or {}], named))


def _pool_accounts(config: Config) -> Iterator[Problem]:
    return _unknown_accounts(list(config.accounts), ((i, p.account) for i, p in config.pools.items()))


def _unknown_accounts(declared: Sequence[str], named: Iterable[tuple[str, str]]) -> Iterator[Problem]:
    listed = ", ".join(declared) if declared else "none"
    for pool_id, account in named:
        if account in declared:
            continue
        close = difflib.get_close_matches(account, declared, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        yield Problem(
            ("pools", pool_id, "account"), f"unknown account '{account}' (declared: {listed}){hint}"
        )


def _identity_coordinates(config: Config) -> Iterator[Problem]:
    """Managed identities are set on pools through ARM only, which needs the account's ARM name."""
    for pool_id, pool in config.pools.items():
        account = config.accounts.get(pool.account)
        if pool.identity is None or account is None:
            continue
        missing = ", ".join(account.arm_coordinates_missing)
        if missing:
            yield Problem(
                ("pools", pool_id, "identity"),
                f"pools with identity need ARM coordinates: accounts.{pool.account} lacks {missing}",
            )


def _identity_references(config: Config) -> Iterator[Problem]:
    """Batch refuses an identity_reference to an identity the pool's nodes do not carry."""
    for pool_id, pool in config.pools.items():
        assigned = {i.casefold() for i in pool.identity.user_assigned_identities} if pool.identity else set()
        for path, resource_id in _references_in(pool, ()):
            if resource_id.casefold() not in assigned:
                yield Problem(
                    ("pools", pool_id, *path),
                    "is not one of the pool's identities: add it to identity.user_assigned_identities",
                )


def _references_in(node: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            value = getattr(node, name)
            if name == "identity" and isinstance(node, Pool):
                continue
            if name == "identity_reference" and value is not None:
                yield (*path, name, "resource_id"), value.resource_id
            else:
                yield from _references_in(value, (*path, name))
    elif isinstance(node, list | tuple):
        for index, item in enumerate(node):
            yield from _references_in(item, (*path, index))
    elif isinstance(node, dict):
        for key, item in node.items():
            yield from _references_in(item, (*path, str(key)))


def _pool_subnets(config: Config) -> Iterator[Problem]:
    """Batch takes a pool's subnet only from the subscription its account is in."""
    for pool_id, pool in config.pools.items():
        account = config.accounts.get(pool.account)
        network = pool.network_configuration
        subnet = parse_arm_id(network.subnet_id) if network and network.subnet_id else None
        if account is None or account.subscription_id is None or subnet is None:
            continue
        if subnet.subscription_id.lower() != account.subscription_id:
            yield Problem(
                ("pools", pool_id, "network_configuration", "subnet_id"),
                f"is in subscription {subnet.subscription_id}, but accounts.{pool.account} is in "
                f"{account.subscription_id}; a pool's virtual network must be in its account's subscription",
            )


def _duplicate_accounts(config: Config) -> Iterator[Problem]:
    """Two names for one Batch account would each see the other's pools as undeclared, and prune them."""
    first: dict[str, str] = {}
    for name, account in config.accounts.items():
        key = account.batch_url.lower()
        if key in first:
            yield Problem(
                ("accounts", name, "batch_url"),
                f"same Batch account as accounts.{first[key]}: declare it once and put all its pools under "
                "that name",
            )
        else:
            first[key] = name


def _cluster_subscriptions(config: Config) -> Iterator[Problem]:
    for name, cluster in config.clusters.items():
        subscription = cluster.subscription_id or config.azure.subscription_id
        if subscription is None:
            yield Problem(
                ("clusters", name, "subscription_id"),
                "required (set it here, in azure.subscription_id or in dask config "
                "cloudprovider.azure.subscription_id)",
            )
            continue
        yield from _network_in_subscription(name, cluster, subscription)


def _network_in_subscription(name: str, cluster: Cluster, subscription: str) -> Iterator[Problem]:
    """Azure refuses a NIC whose virtual network or security group is in another subscription."""
    for key in ("vnet", "subnet", "security_group"):
        value: str | None = getattr(cluster, key)
        parsed = parse_arm_id(value) if value else None
        if parsed is not None and parsed.subscription_id.lower() != subscription.lower():
            yield Problem(
                ("clusters", name, key),
                f"is in subscription {parsed.subscription_id}, but the cluster's VMs and NICs are created in "
                f"{subscription}; a NIC must be in the subscription of its network and security group",
            )


def _metrics_pairs(config: Config) -> Iterator[Problem]:
    yield from _both(("metrics", "basic_auth"), config.metrics.basic_auth, "username", "password")
    yield from _both(("metrics", "tls"), config.metrics.tls, "cert_file", "key_file")


def _both(path: tuple[str, ...], section: BaseModel | None, first: str, second: str) -> Iterator[Problem]:
    """Two keys that only work together: a section that has one needs the other."""
    if section is None:
        return
    for key, other in ((first, second), (second, first)):
        if getattr(section, key) is None:
            yield Problem((*path, key), f"required with {path[-1]}.{other}")
