"""The smallest pool a config accepts, as its YAML gives it, for the spec, plan and command tests.

`tests/` is on `sys.path` through `tests/conftest.py` (pytest's default `prepend` import mode), so any
test folder imports this as `pool_spec_env`.
"""

from __future__ import annotations

import copy
from typing import Any

VM_CONFIG: dict[str, Any] = {
    "image_reference": {
        "publisher": "canonical",
        "offer": "0001-com-ubuntu-server-jammy",
        "sku": "22_04-lts",
        "version": "latest",
    },
    "node_agent_sku_id": "batch.node.ubuntu 22.04",
}
"""`virtual_machine_configuration` of an Ubuntu 22.04 pool."""


def pool_dict(account: str, /, **overrides: Any) -> dict[str, Any]:
    """One `standard_d2s_v3` node of Ubuntu in `account`; `overrides` replace or add keys (`account` too)."""
    return {
        "account": account,
        "vm_size": "standard_d2s_v3",
        "virtual_machine_configuration": copy.deepcopy(VM_CONFIG),
        "target_dedicated_nodes": 1,
        **overrides,
    }
