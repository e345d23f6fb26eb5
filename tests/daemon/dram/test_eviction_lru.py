"""LRU: candidates in recency order; refused candidates become most recent."""
from __future__ import annotations

from tierd_daemon.dram.eviction import make_policy


def test_recency_order():
    pol = make_policy("lru", 1 << 20)
    for k in "abcde":
        pol.insert(k, 10)
    pol.access("b")
    pol.access("a")
    it = pol.victims()
    got = []
    for k in it:
        got.append(k)
        pol.evicted(k)
    assert got == ["c", "d", "e", "b", "a"]
    assert len(pol) == 0 and pol.resident_bytes == 0


def test_refused_key_moves_to_most_recent():
    pol = make_policy("lru", 1 << 20)
    for k in "abc":
        pol.insert(k, 10)
    it = pol.victims()
    assert next(it) == "a"                    # refused (leased)
    assert next(it) == "b"
    pol.evicted("b")
    assert next(it) == "c"
    pol.evicted("c")
    assert list(it) == []                     # each key offered at most once per call
    assert "a" in pol and pol.resident_bytes == 10
    pol.insert("d", 5)
    assert list(pol.victims()) == ["a", "d"]
