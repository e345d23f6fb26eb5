"""prefetch returns a Future of tiers; errors surface on .result()."""
import concurrent.futures

import pytest

import tierd


def test_prefetch_resolves(daemon):
    with tierd.connect(daemon.socket) as c:
        c.put_many("default", [(f"pf{i}", bytes([i]) * 5000) for i in range(20)],
                   durability="persisted")
        fut = c.prefetch("default", [f"pf{i}" for i in range(20)])
        assert isinstance(fut, concurrent.futures.Future)
        tiers = fut.result(timeout=30)
        assert len(tiers) == 20 and set(tiers) <= {"dram", "nvme"}
        assert c.get("default", "pf3").tobytes() == bytes([3]) * 5000


def test_prefetch_errors_on_result(daemon):
    with tierd.connect(daemon.socket) as c:
        with pytest.raises(tierd.NotFound):
            c.prefetch("default", ["absent"]).result(timeout=30)
        with pytest.raises(tierd.UnknownNamespace):
            c.prefetch("no-such-ns", ["k"]).result(timeout=30)
