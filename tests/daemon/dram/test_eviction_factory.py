"""make_policy: known names, unknown names, the default."""
from __future__ import annotations

import pytest

from tierd_daemon.dram.eviction import DEFAULT_POLICY, POLICIES, EvictionPolicy, make_policy


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_known_names(name):
    pol = make_policy(name, 4096)
    assert isinstance(pol, EvictionPolicy)
    assert pol.name == name and len(pol) == 0 and pol.resident_bytes == 0


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError) as ei:
        make_policy("clock", 4096)
    msg = str(ei.value)
    assert "clock" in msg
    for name in POLICIES:
        assert name in msg


def test_default_is_a_known_policy():
    assert DEFAULT_POLICY in POLICIES
    assert make_policy(DEFAULT_POLICY, 1).name == DEFAULT_POLICY


@pytest.mark.parametrize("cap", [0, -1])
def test_bad_capacity(cap):
    with pytest.raises(ValueError):
        make_policy(DEFAULT_POLICY, cap)
