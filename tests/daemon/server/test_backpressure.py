"""DRAM full of dirty data: backpressure, then a clear TierFull after the
configured timeout, never unbounded memory; the tier recovers when NVMe
has room again."""
from __future__ import annotations

import time

import psutil

from rawwire import DataConn

MiB = 1 << 20


def test_dirty_tier_full_then_tierfull_then_recovery(daemon_factory):
    # NVMe (8 MiB) is smaller than DRAM (32 MiB): once NVMe is full the
    # flusher cannot clean anything, and dirty data piles up in DRAM.
    d = daemon_factory(capacity="8MiB", dram="32MiB", alloc_timeout=1)
    c = DataConn(d.socket)
    rss0 = psutil.Process(d.proc.pid).memory_info().rss
    chunk = b"\xab" * (4 * MiB)
    acked = []
    for i in range(40):
        t0 = time.monotonic()
        rep = c.put("default", f"c{i}".encode(), chunk)
        if not rep["ok"]:
            waited = time.monotonic() - t0
            break
        acked.append(i)
    else:
        raise AssertionError("40 x 4 MiB fit into 8 MiB of NVMe + 32 MiB of DRAM")
    assert rep["error"]["code"] == "TIER_FULL", rep
    assert "dirty" in rep["error"]["message"] and "dram_bytes" in rep["error"]["message"]
    assert waited >= 0.9, "TierFull came before the configured backpressure timeout"
    # Bounded: the daemon holds no more than its arenas (they are shared
    # memory counted once) plus a modest overhead, however many puts came.
    grown = psutil.Process(d.proc.pid).memory_info().rss - rss0
    assert grown < 64 * MiB, f"daemon RSS grew by {grown / MiB:.0f} MiB"
    st = c.call("status")["result"]["namespaces"]["default"]
    assert st["dirty_bytes"] > 16 * MiB
    # Objects still in DRAM read back exactly. Those already flushed and
    # evicted would need arena room to come back from NVMe: with the arena
    # full of dirty data that is a TierFull too, never wrong bytes.
    in_dram = 0
    for i in acked:
        rep = c.call("get", ns="default", keys=[f"c{i}".encode()], lease=False)
        if rep["ok"]:
            r = rep["result"][0]
            assert c.arena("default")[r["offset"]:r["offset"] + r["size"]].tobytes() == chunk
            in_dram += r["tier"] == "dram"
        else:
            assert rep["error"]["code"] == "TIER_FULL"
    assert in_dram >= 4
    # Make room on NVMe: the flusher catches up and puts work again.
    assert c.call("delete", ns="default", keys=[f"c{i}".encode() for i in acked[:-1]])["ok"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rep = c.put("default", b"again", chunk)
        if rep["ok"]:
            break
        time.sleep(0.2)
    assert rep["ok"], rep
    # NVMe is exactly full again now: a durable put says so (it cannot be
    # persisted), and succeeds once there is room.
    rep = c.put("default", b"durable", b"x" * 100, "persisted")
    assert not rep["ok"] and rep["error"]["code"] == "STORE_FULL", rep
    assert c.call("delete", ns="default", keys=[b"again"])["ok"]
    assert c.put("default", b"durable2", b"x" * 100, "persisted")["ok"]
    c.close()


def test_sigterm_flushes_dirty_data(daemon_factory):
    d = daemon_factory()
    c = DataConn(d.socket)
    blobs = {f"s{i}".encode(): bytes([i]) * (300_000 + i) for i in range(20)}
    for k, v in blobs.items():
        assert c.put("default", k, v, "staged")["ok"]
    c.close()
    assert d.stop() == 0
    assert "flushed dirty data" in d.log() and "tierd stopped" in d.log()
    d.start()
    c = DataConn(d.socket)
    for k, v in blobs.items():
        assert c.get("default", k) == v
    st = c.call("status")["result"]["namespaces"]["default"]
    assert st["hits_nvme"] == len(blobs)     # they came back from NVMe, not memory
    c.close()
