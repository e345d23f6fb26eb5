"""More data than the DRAM tier holds: puts stream through, old objects come back from NVMe."""
import numpy as np

import tierd


def test_put_many_larger_than_arena_and_nvme_reads(daemon):
    chunk = 2 << 20
    objs = {f"big/{i:03d}": np.full(chunk, i, np.uint8) for i in range(48)}   # 96 MiB > 64 MiB
    with tierd.connect(daemon.socket) as c:
        c.put_many("default", objs)
        c.flush("default")
        tiers = []
        for k, v in objs.items():
            with c.get("default", k) as lease:
                assert lease.array.size == chunk and lease.array[0] == v[0] \
                    and np.array_equal(lease.array, v), k
                tiers.append(lease.tier)
        assert "nvme" in tiers, tiers          # evicted objects were promoted back
        pf = c.prefetch("default", list(objs)[:8]).result(timeout=60)
        assert set(pf) <= {"dram", "nvme"}
