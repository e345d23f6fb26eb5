"""S3-FIFO: one-hit-wonder scans do not push out frequently accessed objects."""
from __future__ import annotations

from tierd_daemon.dram.eviction import S3FIFOPolicy, make_policy

MiB = 1 << 20


def _fill_and_evict(pol, capacity, key, nbytes):
    if pol.resident_bytes + nbytes > capacity:
        for v in pol.victims():
            pol.evicted(v)
            if pol.resident_bytes + nbytes <= capacity:
                break
    pol.insert(key, nbytes)


def test_scan_does_not_evict_hot_object():
    cap = 100 * MiB
    pol = make_policy("s3fifo", cap)
    assert isinstance(pol, S3FIFOPolicy)
    hot = ("kv", b"hot")
    _fill_and_evict(pol, cap, hot, MiB)
    for i in range(10_000):                    # a scan of 100x the cache, never reused
        _fill_and_evict(pol, cap, ("ckpt", b"%d" % i), MiB)
        if i % 50 == 0:                        # the hot object keeps being read
            assert hot in pol, f"hot object evicted at scan step {i}"
            pol.access(hot)
    assert hot in pol
    assert pol.resident_bytes <= cap


def test_lru_by_contrast_loses_hot_object_to_scan():
    cap = 100 * MiB
    pol = make_policy("lru", cap)
    hot = ("kv", b"hot")
    _fill_and_evict(pol, cap, hot, MiB)
    pol.access(hot)
    for i in range(200):
        _fill_and_evict(pol, cap, ("ckpt", b"%d" % i), MiB)
    assert hot not in pol


def test_ghost_hit_goes_to_main_and_unaccessed_small_is_evicted_first():
    pol = make_policy("s3fifo", 1000)
    pol.insert("a", 50)
    pol.insert("b", 50)
    pol.insert("c", 50)
    assert next(iter(pol.victims())) == "a"   # small FIFO order
    pol.access("a")                           # a hit: a gets promoted instead
    v = pol.victims()
    assert next(v) == "b"
    pol.evicted("b")                          # b to the ghost
    assert pol.ghost_len == 1
    pol.insert("b", 50)                       # ghost hit: straight to main
    assert pol.ghost_len == 0
    # S (c, 50 bytes) is under its 10% target, so M is evicted first, oldest first
    order = list(pol.victims())
    assert order == ["a", "b", "c"]


def test_refused_victim_stays_resident_and_later_offered():
    pol = make_policy("s3fifo", 1000)
    for k in "abcd":
        pol.insert(k, 100)
    offered = list(pol.victims())             # refuse everything
    assert set(offered) == set("abcd")
    assert len(offered) == 4                  # each offered once per call
    assert all(k in pol for k in "abcd") and pol.resident_bytes == 400
