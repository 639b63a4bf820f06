"""The top-level config model, Batch accounts and their auth, and the cross-section checks."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pool_spec_env import pool_dict
from pydantic import ValidationError

from reconciler.spec.account import (
    Account,
    AzureCliAuth,
    AzureSettings,
    CertificateAuth,
    ClientSecretAuth,
    DefaultAuth,
    ManagedIdentityAuth,
    SharedKeyAuth,
)
from reconciler.spec.checks import Problem, cross_check
from reconciler.spec.config import Config
from reconciler.spec.secrets import Secret

SUB = "11111111-2222-3333-4444-555555555555"
TENANT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CLIENT = "99999999-8888-7777-6666-555555555555"
PROD_URL = "https://prodbatch.japaneast.batch.azure.com"


def pool(**overrides: Any) -> dict[str, Any]:
    return pool_dict("prod", **overrides)


def contract_example() -> dict[str, Any]:
    """The config file of the contract, with a minimal valid pool."""
    return {
        "azure": {
            "arm_endpoint": "https://management.azure.com",
            "authority": "https://login.microsoftonline.com",
            "ca_bundle": "/etc/reconciler/extra-ca.pem",
            "auth": {"method": "managed_identity"},
        },
        "accounts": {
            "prod": {
                "batch_url": PROD_URL,
                "subscription_id": SUB,
                "resource_group": "rg-batch",
                "account_name": "prodbatch",
                "auth": {
                    "method": "certificate",
                    "tenant_id": TENANT,
                    "client_id": CLIENT,
                    "certificate_path": "/etc/reconciler/sp.pem",
                },
                "proxies": {"https": "http://proxy.corp:3128"},
            }
        },
        "defaults": {"pool": {"task_slots_per_node": 2}},
        "pools": {"p_id1": pool()},
        "clusters": {},
        "schedule": {"reconcile_interval": "60s", "jitter": "5s"},
        "safety": {"prune": False},
        "metrics": {"address": "127.0.0.1", "port": 9464},
    }


def errors(data: dict[str, Any], model: type[Any] = Config) -> dict[str, str]:
    """Dotted location -> message of every error `model` reports for `data`."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return {".".join(str(p) for p in err["loc"]): err["msg"] for err in caught.value.errors()}


def with_(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    data = copy.deepcopy(base if base is not None else contract_example())
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return data


# --- the whole file ------------------------------------------------------------------------------------


def test_contract_example_validates_with_its_values() -> None:
    config = Config.model_validate(contract_example())
    assert isinstance(config.azure.auth, ManagedIdentityAuth)
    assert str(config.azure.ca_bundle) == "/etc/reconciler/extra-ca.pem"
    prod = config.accounts["prod"]
    assert isinstance(prod.auth, CertificateAuth)
    assert prod.proxies is not None
    assert prod.proxies.https == "http://proxy.corp:3128"
    assert set(config.pools) == {"p_id1"}
    assert config.defaults.pool == {"task_slots_per_node": 2}
    assert config.schedule.reconcile_interval == timedelta(seconds=60)
    assert config.safety.prune is False
    assert config.metrics.port == 9464
    assert cross_check(config) == []


def test_an_empty_file_means_public_cloud_and_safe_defaults() -> None:
    config = Config.model_validate({})
    assert config.azure.arm_endpoint == "https://management.azure.com"
    assert config.azure.authority == "https://login.microsoftonline.com"
    assert isinstance(config.azure.auth, DefaultAuth)
    assert config.schedule.reconcile_interval == timedelta(seconds=60)
    assert config.schedule.jitter == timedelta(seconds=5)
    assert config.schedule.refresh_windows == []
    assert (config.safety.prune, config.safety.max_deletions_per_run) == (False, 1)
    assert (config.metrics.address, config.metrics.port) == ("127.0.0.1", 9464)
    assert (config.logging.level, config.logging.format) == ("info", "auto")


def test_unknown_top_level_key_is_an_error() -> None:
    assert errors({"pool": {}}) == {"pool": "Extra inputs are not permitted"}


def test_defaults_pool_must_be_a_mapping() -> None:
    found = errors({"defaults": {"pool": ["vm_size"]}})
    assert list(found) == ["defaults.pool"]
    assert "dictionary" in found["defaults.pool"]


def test_defaults_has_no_other_sections() -> None:
    assert list(errors({"defaults": {"clusterz": {}}})) == ["defaults.clusterz"]


def test_bad_pool_id_is_reported_at_the_key_next_to_other_pool_errors() -> None:
    data = with_("pools", {"bad id!": pool(), "p2": pool(vm_size=None)})
    found = errors(data)
    assert "pools.bad id!" in found
    assert "1 to 64 letters, digits, '-' or '_'" in found["pools.bad id!"]
    assert "pools.p2.vm_size" in found


def test_pool_id_longer_than_64_is_rejected() -> None:
    assert list(errors(with_("pools", {"p" * 65: pool()}))) == ["pools." + "p" * 65]


def test_numeric_pool_key_is_taken_as_its_name() -> None:
    config = Config.model_validate(with_("pools", {123: pool()}))
    assert list(config.pools) == ["123"]


def test_a_key_that_is_not_text_is_rejected() -> None:
    assert errors(with_("pools", {None: pool()})) == {"pools.None": "must be a name (text)"}
    assert errors({"clusters": {1.5: {}}}) == {"clusters.1.5": "must be a name (text)"}


def test_bad_account_key_is_reported_at_the_key() -> None:
    found = errors({"accounts": {"-prod": {"batch_url": PROD_URL}}})
    assert list(found) == ["accounts.-prod"]
    assert "letters, digits, '-' or '_'" in found["accounts.-prod"]


def test_schedule_values() -> None:
    found = errors({"schedule": {"reconcile_interval": "0s"}})
    assert found == {"schedule.reconcile_interval": "must be at least 1 second (got 0s)"}
    found = errors({"schedule": {"reconcile_interval": "30s", "jitter": "30s"}})
    assert found == {"schedule.jitter": "must be shorter than reconcile_interval (30s), got 30s"}
    found = errors({"schedule": {"reconcile_interval": "3s"}})
    assert found == {"schedule.jitter": "must be shorter than reconcile_interval (3s), got PT5S"}
    assert "duration like" in errors({"schedule": {"jitter": "soon"}})["schedule.jitter"]


def test_refresh_windows_take_a_cron_start_and_a_duration() -> None:
    config = Config.model_validate(
        {"schedule": {"refresh_windows": [{"start": "0 2 * * 1-5", "duration": "PT3H"}]}}
    )
    window = config.schedule.refresh_windows[0]
    assert (window.start, window.duration) == ("0 2 * * 1-5", timedelta(hours=3))

    found = errors({"schedule": {"refresh_windows": [{"start": "0 2 * *", "duration": "1h"}]}})
    assert found == {
        "schedule.refresh_windows.0.start": "must be a cron expression of 5 fields: minute hour day month "
        "day-of-week, e.g. 0 2 * * * (got '0 2 * *')"
    }
    found = errors({"schedule": {"refresh_windows": [{"start": "0 25 * * *", "duration": "1h"}]}})
    assert found["schedule.refresh_windows.0.start"].startswith("is not a valid cron expression")
    found = errors({"schedule": {"refresh_windows": [{"start": "0 2 * * *", "duration": "0s"}]}})
    assert found == {"schedule.refresh_windows.0.duration": "must be above zero (got 0s)"}


def test_safety_max_deletions_is_not_negative() -> None:
    assert errors({"safety": {"max_deletions_per_run": -1}}) == {
        "safety.max_deletions_per_run": "must be at least 0 (got -1)"
    }
    assert Config.model_validate({"safety": {"prune": True, "max_deletions_per_run": 0}}).safety.prune


def test_metrics_address_and_port() -> None:
    assert errors({"metrics": {"port": 0}}) == {"metrics.port": "must be between 1 and 65535 (got 0)"}
    assert errors({"metrics": {"port": 70000}}) == {"metrics.port": "must be between 1 and 65535 (got 70000)"}
    assert errors({"metrics": {"address": "not an address"}}) == {
        "metrics.address": "must be an IP address or host name to listen on, e.g. 0.0.0.0"
    }
    for address in ("0.0.0.0", "::", "metrics.internal"):
        assert Config.model_validate({"metrics": {"address": address}}).metrics.address == address


def test_metrics_tls_and_basic_auth() -> None:
    config = Config.model_validate(
        {
            "metrics": {
                "tls": {"cert_file": "/etc/reconciler/tls.crt", "key_file": "/etc/reconciler/tls.key"},
                "basic_auth": {"username": "prometheus", "password": "scrape-pass-123"},
            }
        }
    )
    assert config.metrics.basic_auth is not None
    password = config.metrics.basic_auth.password
    assert isinstance(password, Secret)
    assert password.reveal() == "scrape-pass-123"
    assert cross_check(config) == []


def test_logging_level_is_case_insensitive_and_format_closed() -> None:
    assert Config.model_validate({"logging": {"level": "DEBUG"}}).logging.level == "debug"
    assert list(errors({"logging": {"format": "xml"}})) == ["logging.format"]
    assert list(errors({"logging": {"level": "verbose"}})) == ["logging.level"]


def test_auth_for_falls_back_to_azure_auth() -> None:
    data = contract_example()
    data["accounts"]["b2"] = {"batch_url": "https://batch2.westeurope.batch.azure.com"}
    config = Config.model_validate(data)
    assert isinstance(config.auth_for("prod"), CertificateAuth)
    assert isinstance(config.auth_for("b2"), ManagedIdentityAuth)


# --- accounts ------------------------------------------------------------------------------------------


def account(**fields: Any) -> dict[str, Any]:
    return {"batch_url": PROD_URL, **fields}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://prodbatch.japaneast.batch.azure.com",
            "batch_url must use https (plain http only for the local emulator on 127.0.0.1/localhost)",
        ),
        ("https://prodbatch.japaneast.batch.azure.com/x", "batch_url must not have a path (got /x)"),
        ("ftp://prodbatch", "batch_url must be a URL like https://host"),
        ("prodbatch.japaneast.batch.azure.com", "batch_url must be a URL like https://host"),
        ("https://prodbatch.japaneast.batch.azure.com?x=1", "batch_url must not have a query or fragment"),
        ("https://user:pw@prodbatch.japaneast.batch.azure.com", "batch_url must not hold credentials"),
        ("https://prodbatch:99999", "batch_url must be a URL like https://host"),
    ],
)
def test_batch_url_rules(url: str, message: str) -> None:
    assert errors(account(batch_url=url), Account) == {"batch_url": message}


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8443/prodbatch", "https://localhost:8443/acct", "http://localhost:9000"]
)
def test_batch_url_on_loopback_may_be_http_and_have_a_path(url: str) -> None:
    assert Account.model_validate(account(batch_url=url)).is_local


def test_batch_url_loses_its_trailing_slash() -> None:
    assert Account.model_validate(account(batch_url=PROD_URL + "/")).batch_url == PROD_URL


def test_subscription_id_must_be_a_guid() -> None:
    assert errors(account(subscription_id="prod-sub"), Account) == {
        "subscription_id": "must be a GUID like 11111111-2222-3333-4444-555555555555"
    }
    upper = Account.model_validate(account(subscription_id=SUB.upper()))
    assert upper.subscription_id == SUB


def test_resource_group_and_account_name_rules() -> None:
    assert (
        "resource group name is 1 to 90" in errors(account(resource_group="rg."), Account)["resource_group"]
    )
    assert "resource group name" in errors(account(resource_group="r" * 91), Account)["resource_group"]
    assert errors(account(account_name="Prod_Batch"), Account) == {
        "account_name": "a Batch account name is 3 to 24 lowercase letters and digits"
    }
    assert errors(account(account_name="otherbatch"), Account) == {
        "account_name": "does not match batch_url, which names account 'prodbatch'"
    }


def test_arm_coordinates_missing_lists_what_is_not_set() -> None:
    acct = Account.model_validate(account(resource_group="rg-batch"))
    assert acct.arm_coordinates_missing == ("subscription_id", "account_name")


@pytest.mark.parametrize(
    ("auth", "kind"),
    [
        ({"method": "default"}, DefaultAuth),
        ({}, DefaultAuth),
        (
            {
                "method": "certificate",
                "tenant_id": TENANT,
                "client_id": CLIENT,
                "certificate_path": "/sp.pem",
                "certificate_password": "pfx-pass",
                "send_certificate_chain": True,
            },
            CertificateAuth,
        ),
        (
            {
                "method": "client_secret",
                "tenant_id": "contoso.onmicrosoft.com",
                "client_id": CLIENT,
                "client_secret": "sp-secret-value",
            },
            ClientSecretAuth,
        ),
        ({"method": "managed_identity"}, ManagedIdentityAuth),
        ({"method": "managed_identity", "client_id": CLIENT}, ManagedIdentityAuth),
        ({"method": "azure_cli"}, AzureCliAuth),
        ({"method": "shared_key", "key": "base64key=="}, SharedKeyAuth),
    ],
)
def test_auth_union_picks_the_kind_by_method(auth: dict[str, Any], kind: type[Any]) -> None:
    assert isinstance(Account.model_validate(account(auth=auth)).auth, kind)


def test_unknown_auth_method_lists_the_allowed_ones() -> None:
    allowed = "default, certificate, client_secret, managed_identity, azure_cli, shared_key"
    assert errors(account(auth={"method": "certficate"}), Account) == {
        "auth": f"unknown auth method 'certficate' (allowed: {allowed}); did you mean 'certificate'?"
    }
    assert errors(account(auth={"method": "kerberos"}), Account) == {
        "auth": f"unknown auth method 'kerberos' (allowed: {allowed})"
    }
    assert errors(account(auth={"client_id": CLIENT}), Account) == {
        "auth": f"auth needs a method: one of {allowed}"
    }


def test_auth_errors_point_at_the_key_not_at_the_union_tag() -> None:
    found = errors(account(auth={"method": "certificate", "tenant_id": TENANT}), Account)
    assert found == {"auth.client_id": "Field required", "auth.certificate_path": "Field required"}
    found = errors(
        account(
            auth={
                "method": "client_secret",
                "tenant_id": "x",
                "client_id": "y",
                "client_secret": "s3cret-value",
            }
        ),
        Account,
    )
    assert found == {
        "auth.tenant_id": "must be a tenant GUID or a verified domain like contoso.onmicrosoft.com",
        "auth.client_id": "must be a GUID like 11111111-2222-3333-4444-555555555555",
    }


def test_auth_kinds_take_only_their_own_keys() -> None:
    found = errors(account(auth={"method": "managed_identity", "client_secret": "s3cret-value"}), Account)
    assert found == {"auth.client_secret": "Extra inputs are not permitted"}


def test_shared_key_account_name_comes_from_the_url_or_account_name() -> None:
    key = {"method": "shared_key", "key": "base64key=="}
    assert Account.model_validate(account(auth=key)).batch_account_name == "prodbatch"
    local = Account.model_validate(account(batch_url="http://127.0.0.1:8443/emu1", auth=key))
    assert local.batch_account_name == "emu1"
    named = Account.model_validate(account(batch_url="http://127.0.0.1:8443", account_name="emu2", auth=key))
    assert named.batch_account_name == "emu2"
    assert errors(account(batch_url="http://127.0.0.1:8443", auth=key), Account) == {
        "account_name": "required with shared_key auth: this batch_url does not name the account"
    }
    with pytest.raises(ValidationError) as caught:
        Account.model_validate(account(batch_url="http://127.0.0.1:8443", auth=key))
    assert caught.value.errors()[0]["type"] == "missing"


def test_proxies() -> None:
    assert errors(account(proxies={"https": "proxy.corp:3128"}), Account) == {
        "proxies.https": "must be a proxy URL like http://proxy.corp:3128"
    }
    found = errors(account(proxies={"https": "http://me:hunter2@proxy.corp:3128"}), Account)
    assert list(found) == ["proxies.https"]
    assert "must not hold a password" in found["proxies.https"]
    assert "hunter2" not in str(found)
    assert list(errors(account(proxies={"ftp": "http://proxy.corp:3128"}), Account)) == ["proxies.ftp"]


def test_azure_settings_rules() -> None:
    assert errors({"arm_endpoint": "http://management.azure.com"}, AzureSettings) == {
        "arm_endpoint": "arm_endpoint must use https (plain http only for the local emulator on "
        "127.0.0.1/localhost)"
    }
    assert AzureSettings.model_validate({"arm_endpoint": "http://127.0.0.1:8443/"}).arm_endpoint == (
        "http://127.0.0.1:8443"
    )
    found = errors({"auth": {"method": "shared_key", "key": "base64key=="}}, AzureSettings)
    assert list(found) == ["auth"]
    assert "cannot sign ARM calls" in found["auth"]
    assert errors({"subscription_id": "nope"}, AzureSettings) == {
        "subscription_id": "must be a GUID like 11111111-2222-3333-4444-555555555555"
    }


# --- secrets never show --------------------------------------------------------------------------------


SECRET = "Sup3r-S3cret-Value"


def config_with_every_secret() -> dict[str, Any]:
    data = contract_example()
    data["accounts"]["prod"]["auth"] = {
        "method": "client_secret",
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "client_secret": SECRET,
    }
    data["accounts"]["b2"] = {
        "batch_url": "https://batch2.westeurope.batch.azure.com",
        "auth": {"method": "shared_key", "key": SECRET + "-key"},
    }
    data["azure"]["auth"] = {
        "method": "certificate",
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "certificate_path": "/sp.pfx",
        "certificate_password": SECRET + "-pfx",
    }
    data["metrics"]["basic_auth"] = {"username": "prom", "password": SECRET + "-metrics"}
    return data


def test_no_secret_in_repr_str_or_dump_of_a_config() -> None:
    config = Config.model_validate(config_with_every_secret())
    for text in (repr(config), str(config), json.dumps(config.model_dump(mode="json"))):
        assert SECRET not in text
    prod_auth = config.accounts["prod"].auth
    assert isinstance(prod_auth, ClientSecretAuth)
    assert prod_auth.client_secret.reveal() == SECRET


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (
            "accounts.prod.auth",
            {"method": "client_secret", "tenant_id": TENANT, "client_id": "bad", "client_secret": SECRET},
        ),
        (
            "accounts.prod.auth",
            {"method": "client_secret", "tenant_id": TENANT, "client_id": CLIENT, "client_secret": [SECRET]},
        ),
        ("accounts.prod.auth", {"method": "shared_key", "key": {"value": SECRET}}),
        ("accounts.prod.auth", {"method": "certficate", "certificate_password": SECRET}),
        ("accounts.prod.auth", {"method": "managed_identity", "client_secret": SECRET}),
        ("metrics.basic_auth", {"username": "prom", "password": [SECRET], "extra": SECRET}),
    ],
)
def test_no_secret_in_a_validation_error(path: str, bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        Config.model_validate(with_(path, bad))
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


# --- schema --------------------------------------------------------------------------------------------


def test_json_schema_is_produced_and_knows_the_sections() -> None:
    schema = Config.model_json_schema()
    assert set(schema["properties"]) == {
        "azure",
        "accounts",
        "defaults",
        "pools",
        "clusters",
        "schedule",
        "safety",
        "metrics",
        "logging",
    }
    assert schema["additionalProperties"] is False
    text = json.dumps(schema)
    for method in ("certificate", "client_secret", "managed_identity", "azure_cli", "shared_key"):
        assert f'"{method}"' in text
    assert '"writeOnly": true' in text


def test_json_schema_accepts_what_the_model_accepts_and_flags_a_bad_guid() -> None:
    validator = jsonschema.Draft202012Validator(Config.model_json_schema())
    assert list(validator.iter_errors(config_with_every_secret())) == []
    bad = with_("accounts.prod.subscription_id", "not-a-guid")
    assert [list(e.path) for e in validator.iter_errors(bad)] == [["accounts", "prod", "subscription_id"]]


def test_json_schema_leaves_dask_supplied_cluster_keys_optional() -> None:
    cluster = Config.model_json_schema()["$defs"]["Cluster"]
    assert "required" not in cluster
    assert "default" not in cluster["properties"]["location"]
    assert cluster["properties"]["disk_size"]["default"] == 50
    assert (cluster["properties"]["disk_size"]["minimum"], cluster["properties"]["disk_size"]["maximum"]) == (
        1,
        1023,
    )


# --- cross checks --------------------------------------------------------------------------------------


def two_accounts() -> dict[str, Any]:
    data = contract_example()
    data["accounts"]["batch2"] = {"batch_url": "https://batch2.westeurope.batch.azure.com"}
    return data


def test_pool_naming_an_undeclared_account_gets_did_you_mean() -> None:
    config = Config.model_validate(with_("pools.p_id1.account", "prd", two_accounts()))
    assert cross_check(config) == [
        Problem(
            ("pools", "p_id1", "account"),
            "unknown account 'prd' (declared: prod, batch2); did you mean 'prod'?",
        )
    ]


def test_pool_account_without_close_match_and_without_accounts() -> None:
    config = Config.model_validate(with_("pools.p_id1.account", "zzz", two_accounts()))
    assert cross_check(config)[0].message == "unknown account 'zzz' (declared: prod, batch2)"
    data = contract_example()
    del data["accounts"]
    assert cross_check(Config.model_validate(data)) == [
        Problem(("pools", "p_id1", "account"), "unknown account 'prod' (declared: none)")
    ]


IDENTITY_ID = (
    f"/subscriptions/{SUB}/resourceGroups/rg-id/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/uai"
)


def test_identity_pool_needs_arm_coordinates_of_its_account() -> None:
    data = contract_example()
    data["pools"]["p_id1"]["identity"] = {"type": "UserAssigned", "user_assigned_identities": [IDENTITY_ID]}
    assert cross_check(Config.model_validate(data)) == []
    del data["accounts"]["prod"]["subscription_id"]
    del data["accounts"]["prod"]["resource_group"]
    assert cross_check(Config.model_validate(data)) == [
        Problem(
            ("pools", "p_id1", "identity"),
            "pools with identity need ARM coordinates: accounts.prod lacks subscription_id, resource_group",
        )
    ]


def test_same_batch_account_under_two_names() -> None:
    data = contract_example()
    data["accounts"]["prod2"] = {"batch_url": PROD_URL.upper() + "/"}
    problems = cross_check(Config.model_validate(data))
    assert [p.path for p in problems] == [("accounts", "prod2", "batch_url")]
    assert problems[0].message.startswith("same Batch account as accounts.prod")


def test_metrics_basic_auth_and_tls_need_both_halves() -> None:
    config = Config.model_validate(
        {"metrics": {"basic_auth": {"username": "prom"}, "tls": {"key_file": "/k.pem"}}}
    )
    assert cross_check(config) == [
        Problem(("metrics", "basic_auth", "password"), "required with basic_auth.username"),
        Problem(("metrics", "tls", "cert_file"), "required with tls.key_file"),
    ]
    config = Config.model_validate({"metrics": {"basic_auth": {"password": "pw-value"}}})
    assert cross_check(config) == [
        Problem(("metrics", "basic_auth", "username"), "required with basic_auth.password")
    ]


CLUSTER = {"location": "japaneast", "resource_group": "rg-dask", "vnet": "vnet-dask", "security_group": "nsg"}


def test_cluster_subscription_from_the_cluster_or_azure_default() -> None:
    config = Config.model_validate({"clusters": {"c1": CLUSTER}})
    assert cross_check(config) == [
        Problem(
            ("clusters", "c1", "subscription_id"),
            "required (set it here, in azure.subscription_id or in dask config "
            "cloudprovider.azure.subscription_id)",
        )
    ]
    assert cross_check(Config.model_validate({"clusters": {"c1": {**CLUSTER, "subscription_id": SUB}}})) == []
    assert (
        cross_check(Config.model_validate({"azure": {"subscription_id": SUB}, "clusters": {"c1": CLUSTER}}))
        == []
    )


def test_cluster_network_in_another_subscription() -> None:
    other = "22222222-2222-3333-4444-555555555555"
    vnet = f"/subscriptions/{other}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/hub"
    config = Config.model_validate(
        {"azure": {"subscription_id": SUB}, "clusters": {"c1": {**CLUSTER, "vnet": vnet}}}
    )
    problems = cross_check(config)
    assert [p.path for p in problems] == [("clusters", "c1", "vnet")]
    assert problems[0].message.startswith(f"is in subscription {other}, but the cluster's VMs")


def registry_pool(identity: list[str] | None) -> dict[str, Any]:
    data = contract_example()
    vmc = data["pools"]["p_id1"]["virtual_machine_configuration"]
    vmc["container_configuration"] = {
        "type": "dockerCompatible",
        "container_registries": [
            {"registry_server": "corp.azurecr.io", "identity_reference": {"resource_id": IDENTITY_ID}}
        ],
    }
    if identity is not None:
        data["pools"]["p_id1"]["identity"] = {"user_assigned_identities": identity}
    return data


def test_identity_reference_must_be_one_of_the_pool_identities() -> None:
    assert cross_check(Config.model_validate(registry_pool([IDENTITY_ID.lower()]))) == []
    path = (
        "pools",
        "p_id1",
        "virtual_machine_configuration",
        "container_configuration",
        "container_registries",
        0,
        "identity_reference",
        "resource_id",
    )
    message = "is not one of the pool's identities: add it to identity.user_assigned_identities"
    assert cross_check(Config.model_validate(registry_pool(None))) == [Problem(path, message)]
    other = IDENTITY_ID.replace("/uai", "/other")
    assert cross_check(Config.model_validate(registry_pool([other]))) == [Problem(path, message)]


def test_pool_subnet_must_be_in_the_account_subscription() -> None:
    rg = "resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
    same = with_("pools.p_id1.network_configuration", {"subnet_id": f"/subscriptions/{SUB}/{rg}"})
    assert cross_check(Config.model_validate(same)) == []
    other = "22222222-2222-3333-4444-555555555555"
    data = with_("pools.p_id1.network_configuration", {"subnet_id": f"/subscriptions/{other}/{rg}"})
    problems = cross_check(Config.model_validate(data))
    assert [p.path for p in problems] == [("pools", "p_id1", "network_configuration", "subnet_id")]
    assert problems[0].message.startswith(f"is in subscription {other}, but accounts.prod is in {SUB}")


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(
        ["default", "shared_key", "certificate", PROD_URL, "http://127.0.0.1:1/a", "*/0 * * * *", "60s", SUB]
    )
)
_KEYS = (
    st.text(max_size=8)
    | st.integers()
    | st.none()
    | st.sampled_from(["method", "key", "batch_url", "auth", "vnet", "subnet", "id", "start", "basic_auth"])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)
_SECTIONS = ("azure", "accounts", "defaults", "pools", "clusters", "schedule", "safety", "metrics", "logging")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.fixed_dictionaries({}, optional=dict.fromkeys(_SECTIONS, _VALUES)))
def test_any_document_gives_a_config_or_a_validation_error(data: dict[str, Any]) -> None:
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors_found = exc.errors()
        config = None
    if config is None:
        assert errors_found
    else:
        assert all(isinstance(p, Problem) for p in cross_check(config))


@pytest.mark.parametrize("bad", ["0 2 * *", "0 25 * * *", "every night"])
def test_refresh_windows_and_pool_schedules_judge_cron_alike(bad: str) -> None:
    window = errors({"schedule": {"refresh_windows": [{"start": bad, "duration": "1h"}]}})
    pool = errors({"pools": {"p1": {"refresh": {"schedule": bad}}}})
    assert window["schedule.refresh_windows.0.start"] == pool["pools.p1.refresh.schedule"]
