"""Every policy against a model under random insert/access/remove/victims+evicted."""
from __future__ import annotations

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tierd_daemon.dram.eviction import POLICIES, make_policy

KEYS = [("ns", bytes([i])) for i in range(24)]
CAPACITY = 1000


class PolicyMachine(RuleBasedStateMachine):
    policy_name = ""

    def __init__(self):
        super().__init__()
        self.pol = make_policy(self.policy_name, CAPACITY)
        self.model: dict = {}          # resident key -> nbytes

    @rule(key=st.sampled_from(KEYS), nbytes=st.integers(0, 300))
    def insert(self, key, nbytes):
        if key in self.model:
            with pytest.raises(KeyError):
                self.pol.insert(key, nbytes)
            return
        self.pol.insert(key, nbytes)
        self.model[key] = nbytes

    @rule(key=st.sampled_from(KEYS))
    def access(self, key):
        if key in self.model:
            self.pol.access(key)
        else:
            with pytest.raises(KeyError):
                self.pol.access(key)

    @rule(key=st.sampled_from(KEYS))
    def remove(self, key):
        self.pol.remove(key)
        self.model.pop(key, None)
        assert key not in self.pol

    @rule(decisions=st.lists(st.booleans(), max_size=60), stop_after=st.integers(0, 30))
    def victims_partial(self, decisions, stop_after):
        """Accept/refuse offers per `decisions`, drop the iterator after some evictions."""
        n = len(self.model)
        offers: dict = {}
        evictions = 0
        for i, key in enumerate(self.pol.victims()):
            assert key in self.model, "offered a non-resident key"
            offers[key] = offers.get(key, 0) + 1
            assert offers[key] <= 2
            assert i <= 2 * n
            if decisions[i] if i < len(decisions) else False:
                self.pol.evicted(key)
                del self.model[key]
                evictions += 1
                assert key not in self.pol
                if evictions >= stop_after:
                    break

    @rule()
    def victims_refuse_all(self):
        n = len(self.model)
        count = sum(1 for key in self.pol.victims() if key in self.model)
        assert count <= 2 * n + 1
        if n:
            assert count >= 1

    @precondition(lambda self: len(self.model) > 0)
    @rule(key=st.sampled_from(KEYS))
    def evicted_not_resident_raises(self, key):
        if key not in self.model:
            with pytest.raises(KeyError):
                self.pol.evicted(key)

    @rule()
    def drain_checkpoint(self):
        """Accepting everything empties the policy: no resident key was lost."""
        clone_keys = dict(self.model)
        seen = set()
        for key in self.pol.victims():
            assert key in self.model
            seen.add(key)
            self.pol.evicted(key)
            del self.model[key]
        assert seen == set(clone_keys)
        assert len(self.pol) == 0 and self.pol.resident_bytes == 0
        # put them back so the run keeps state (order of re-insertion is arbitrary)
        for key, nbytes in clone_keys.items():
            self.pol.insert(key, nbytes)
            self.model[key] = nbytes

    @invariant()
    def agrees_with_model(self):
        assert len(self.pol) == len(self.model)
        assert self.pol.resident_bytes == sum(self.model.values())
        for key in KEYS:
            assert (key in self.pol) == (key in self.model)

    @invariant()
    def ghost_bounded(self):
        assert 0 <= self.pol.ghost_bytes <= max(self.pol.ghost_limit_bytes, 0)
        assert self.pol.ghost_len <= self.pol.ghost_bytes or self.pol.ghost_len == 0


_SETTINGS = settings(derandomize=True, deadline=None, max_examples=150,
                     stateful_step_count=60, database=None)

for _name in POLICIES:
    _cls = type(f"{_name.upper()}Machine", (PolicyMachine,), {"policy_name": _name})
    globals()[f"Test{_name.upper()}Stateful"] = _SETTINGS(_cls).TestCase
