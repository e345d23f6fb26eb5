"""A state several times the DRAM arena streams through it, eager and lazy."""
from __future__ import annotations

import numpy as np
import pytest

import tierd

MiB = 1 << 20


@pytest.mark.parametrize("lazy", [False, True])
def test_state_three_times_the_arena(daemon_factory, lazy):
    d = daemon_factory(dram="32MiB", capacity="400MiB", alloc_timeout=30)
    rng = np.random.default_rng(5)
    state = {f"layer{i}": rng.integers(0, 2**31, 6 * MiB // 4, dtype=np.int32)
             for i in range(16)}                                  # 96 MiB in 6 MiB tensors
    state["tiny"] = [np.full(5, i) for i in range(100)]
    with tierd.connect(d.socket) as c:
        ck = c.checkpoints("stream", chunk_bytes=4 * MiB)
        for step in (1, 2):
            state["layer0"][:] = step                             # one tensor changes
            h = ck.save(step, state, lazy=lazy)
            h.wait("staged")
            h.wait("persisted", timeout=300)
        got = ck.load()
        for k, v in state.items():
            if k == "tiny":
                assert all(np.array_equal(a, b) for a, b in zip(got[k], v))
            else:
                assert np.array_equal(got[k], v), k
        assert ck.load(step=1)["layer0"][0] == 1
        st = c.status()["namespaces"]["default"]
        assert st["dedup_bytes"] >= 90 * MiB         # step 2 re-sent the unchanged chunks
