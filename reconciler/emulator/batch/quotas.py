"""Cores per VM size: what the account core quotas are counted in.

A small table of the sizes pools commonly use; an unknown size counts as four cores so quota arithmetic
still happens rather than silently allowing anything.
"""

from __future__ import annotations

import re

DEFAULT_CORES = 4

_CORES = {
    "small": 1,
    "medium": 2,
    "large": 4,
    "extralarge": 8,
    "standard_d11_v2": 2,
    "standard_d12_v2": 4,
    "standard_d13_v2": 8,
    "standard_d14_v2": 16,
    "standard_d15_v2": 20,
    "standard_a1": 1,
    "standard_a1_v2": 1,
    "standard_a2_v2": 2,
    "standard_a4_v2": 4,
    "standard_a8_v2": 8,
    "standard_b2s": 2,
    "standard_b2ms": 2,
    "standard_b4ms": 4,
    "standard_f2s_v2": 2,
    "standard_f4s_v2": 4,
    "standard_f8s_v2": 8,
    "standard_f16s_v2": 16,
    "standard_nc6": 6,
    "standard_nc6s_v3": 6,
    "standard_nc4as_t4_v3": 4,
    "standard_nc24ads_a100_v4": 24,
}


def cores_per_node(vm_size: str) -> int:
    """Cores of one node; D/E/F-series v3-v5 encode the count in the name (`standard_d4s_v3` → 4)."""
    size = vm_size.strip().lower()
    if size in _CORES:
        return _CORES[size]
    match = re.fullmatch(r"standard_[def](\d+)[a-z]*_v[2-6]", size)
    if match:
        return int(match.group(1))
    return DEFAULT_CORES
