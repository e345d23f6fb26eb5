"""NVMe-resident objects come back in one batch, verified; concurrent readers
of the same cold keys share one load."""
from __future__ import annotations

import threading

import numpy as np

import tierd

MiB = 1 << 20


def blob(i: int, n: int = MiB) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, n, dtype=np.uint8)


def test_cold_batch_and_shared_loads(daemon_factory):
    d = daemon_factory(dram="16MiB")
    with tierd.connect(d.socket) as c:
        keys = [f"cold{i}".encode() for i in range(40)]           # 40 MiB through 16 MiB
        c.put_many("default", [(k, blob(i)) for i, k in enumerate(keys)])
        c.flush("default")
        before = c.status()["namespaces"]["default"]["hits_nvme"]
        leases = c.get_many("default", keys[:8])                  # evicted long ago
        assert [ls.tier for ls in leases] == ["nvme"] * 8
        assert all(np.array_equal(ls.array, blob(i)) for i, ls in enumerate(leases))
        for ls in leases:
            ls.release()
        assert c.status()["namespaces"]["default"]["hits_nvme"] == before + 8

        # 4 threads, each its own connection, ask for the same cold keys at once.
        # Which keys are still in DRAM depends on when write-back let each be
        # evicted: take 8 that stat reports on NVMe only.
        cold = [i for i in range(8, 40) if c.stat("default", keys[i])["tier"] == "nvme"][:8]
        assert len(cold) == 8, cold
        errors, tiers = [], []

        def reader():
            try:
                with tierd.connect(d.socket) as cc:
                    ls = cc.get_many("default", [keys[i] for i in cold])
                    ok = all(np.array_equal(x.array, blob(i)) for i, x in zip(cold, ls))
                    tiers.append([x.tier for x in ls])
                    for x in ls:
                        x.release()
                    if not ok:
                        errors.append("wrong bytes")
            except Exception as e:
                errors.append(repr(e))
        ts = [threading.Thread(target=reader) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors
        st = c.status()["namespaces"]["default"]
        # Each of the 8 keys was read from NVMe once; the other readers hit DRAM.
        assert st["hits_nvme"] == before + 16
        assert sum(t.count("nvme") for t in tiers) == 8


def test_odd_sized_objects_promote_exactly(daemon_factory):
    # Sizes that end mid-page: the last page is read straight into the arena
    # page the object owns; the bytes past the object's end never leak into it.
    d = daemon_factory(dram="16MiB")
    sizes = [1, 4095, 4097, 10000, 3 * MiB + 7]
    with tierd.connect(d.socket) as c:
        c.put_many("default", [(f"odd{n}", blob(n, n)) for n in sizes])
        c.put_many("default", [(f"fill{i}", blob(100 + i)) for i in range(20)])   # evict them
        c.flush("default")
        leases = c.get_many("default", [f"odd{n}" for n in sizes])
        assert "nvme" in [ls.tier for ls in leases]
        for n, ls in zip(sizes, leases):
            assert ls.size == n and np.array_equal(ls.array, blob(n, n))
            ls.release()
