"""A leased object's bytes stay put until the lease is released (invariant 3)."""
import numpy as np
import pytest

import tierd


def test_delete_while_leased_keeps_bytes(daemon):
    with tierd.connect(daemon.socket) as c:
        data = np.arange(1 << 18, dtype=np.uint8)
        c.put("cache", "held", data)
        lease = c.get("cache", "held")
        c.delete("cache", "held")
        assert not c.contains("cache", "held")
        # churn well past the arena (32 MiB): new objects must not land on the leased pages
        for i in range(200):
            c.put("cache", f"churn{i}", np.full(1 << 18, 0xEE, np.uint8))
        assert np.array_equal(lease.array, data)
        lease.release()
        with pytest.raises(tierd.LeaseExpired):
            lease.array
        with pytest.raises(tierd.LeaseExpired):
            lease.tobytes()
        lease.release()  # idempotent


def test_overwrite_while_leased_keeps_old_bytes(daemon):
    with tierd.connect(daemon.socket) as c:
        c.put("default", "v", b"A" * 10000)
        with c.get("default", "v") as old:
            c.put("default", "v", b"B" * 10000)
            assert old.tobytes() == b"A" * 10000
            assert c.get("default", "v").tobytes() == b"B" * 10000


def test_context_manager_releases(daemon):
    with tierd.connect(daemon.socket) as c:
        c.put("cache", "cm", b"x")
        with c.get("cache", "cm") as lease:
            assert lease.tobytes() == b"x"
        assert lease.released
