"""Client.close() unmaps its arenas at once, unless views still read from them.

An arena whose daemon has exited is freed only when its last mapping goes;
left to the garbage collector, that cost (~0.5 s per few GiB here) landed in
whatever call triggered the collection.
"""
import gc

import numpy as np

import tierd


def _arena_mappings(ns: str) -> int:
    """How many mappings of the namespace's memfd this process has."""
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if f"memfd:tierd-{ns}" in line)


def test_close_unmaps_arena(daemon):
    gc.disable()    # the unmapping must come from close(), not from a collection
    try:
        c = tierd.connect(daemon.socket)
        c.put("default", "k", np.arange(4096, dtype=np.uint8))
        assert c.get("default", "k").tobytes() == np.arange(4096, dtype=np.uint8).tobytes()
        assert _arena_mappings("default") == 1
        c.close()
        assert _arena_mappings("default") == 0
    finally:
        gc.enable()


def test_close_keeps_mapping_a_view_still_reads(daemon):
    data = np.arange(1 << 16, dtype=np.uint8)
    c = tierd.connect(daemon.socket)
    c.put("default", "held", data)
    lease = c.get("default", "held")
    arr = lease.array                      # a zero-copy view into the arena
    c.close()
    assert _arena_mappings("default") == 1
    assert np.array_equal(arr, data)       # still valid memory after close
    del arr, lease
    gc.collect()
    assert _arena_mappings("default") == 0
