"""Reservations: arena space written in place, named at commit, deduplicated."""
from __future__ import annotations

import numpy as np
import pytest

import tierd

MiB = 1 << 20


def _ns(c, ns="cache"):
    return c.status()["namespaces"][ns]


def test_write_in_place_then_name_at_commit(daemon):
    with tierd.connect(daemon.socket) as c:
        blobs = [b"", b"a" * 10, np.arange(100_000, dtype=np.int32).tobytes()]
        with c.reserve("cache", [len(b) for b in blobs]) as r:
            assert [v.size for v in r.views] == [len(b) for b in blobs]
            for v, b in zip(r.views, blobs):
                v[:] = np.frombuffer(b, np.uint8)
            assert r.commit(["e", "s", "big"]) == [True, True, True]
        for k, b in zip(["e", "s", "big"], blobs):
            with c.get("cache", k) as ls:
                assert ls.tobytes() == b


def test_if_absent_keeps_the_existing_object_and_counts_dedup(daemon):
    with tierd.connect(daemon.socket) as c:
        c.put("cache", "old", b"first")
        used = _ns(c)["dram_used"]
        r = c.reserve("cache", [5, 6])
        r.views[0][:] = np.frombuffer(b"other", np.uint8)
        r.views[1][:] = np.frombuffer(b"second", np.uint8)
        assert r.commit(["old", "new"], if_absent=True) == [False, True]
        with c.get("cache", "old") as ls:
            assert ls.tobytes() == b"first"           # not overwritten
        with c.get("cache", "new") as ls:
            assert ls.tobytes() == b"second"
        st = _ns(c)
        assert st["dedup_bytes"] == 5
        assert st["dram_used"] == used + 4096           # the dropped copy's page is free


def test_if_absent_sees_objects_only_on_nvme(daemon):
    with tierd.connect(daemon.socket) as c:
        c.put("default", "cold", b"on disk", durability="persisted")
    daemon.stop()
    daemon.start()                                      # DRAM tier empty: NVMe only
    with tierd.connect(daemon.socket) as c:
        r = c.reserve("default", [3])
        r.views[0][:] = np.frombuffer(b"new", np.uint8)
        assert r.commit(["cold"], if_absent=True) == [False]
        with c.get("default", "cold") as ls:
            assert ls.tobytes() == b"on disk"


def test_duplicate_keys_in_one_commit_store_the_first(daemon):
    with tierd.connect(daemon.socket) as c:
        r = c.reserve("cache", [1, 1])
        r.views[0][:] = ord("a")
        r.views[1][:] = ord("b")
        assert r.commit(["dup", "dup"], if_absent=True) == [True, False]
        assert c.get("cache", "dup").tobytes() == b"a"


def test_abandoned_or_refused_reservations_free_their_pages(daemon):
    with tierd.connect(daemon.socket) as c:
        c.put("cache", "warm", b"x")
        used = _ns(c)["dram_used"]
        with c.reserve("cache", [MiB, MiB]) as r:
            r.views[0][:] = 1                          # no commit: aborted on exit
        assert _ns(c)["dram_used"] == used
        r = c.reserve("cache", [10, 10])
        with pytest.raises(tierd.InvalidArgument, match="one key per object"):
            r.commit(["only-one"])
        r.abort()
        assert _ns(c)["dram_used"] == used
        r = c.reserve("cache", [10])
        with pytest.raises(tierd.InvalidArgument, match="exceeds the limit of 400"):
            r.commit([b"k" * 401])                     # refused by the daemon: aborted
        with pytest.raises(tierd.InvalidArgument, match="already committed or aborted"):
            r.commit(["fine"])
        assert _ns(c)["dram_used"] == used
        assert not c.contains("cache", "fine")


def test_unnamed_reservation_needs_keys(daemon):
    with tierd.connect(daemon.socket) as c:
        r = c.reserve("cache", [10])
        with pytest.raises(tierd.InvalidArgument, match="allocated without a key; pass keys"):
            r.commit()


def test_oversized_reservation_is_refused_with_the_limit(daemon):
    with tierd.connect(daemon.socket) as c:
        arena = c.namespace_info("cache")["arena_bytes"]
        with pytest.raises(tierd.InvalidArgument, match="quarter of the .* arena"):
            c.reserve("cache", [arena // 4 + 1])


def test_reservation_is_void_after_a_daemon_restart(daemon):
    with tierd.connect(daemon.socket) as c:
        r = c.reserve("default", [100])
        r.views[0][:] = 7
        daemon.stop()
        daemon.start()
        with pytest.raises(tierd.DaemonUnavailable, match="reserve and write again"):
            r.commit(["k"])
        assert not c.contains("default", "k")          # the next call reconnects


def test_sizes_may_be_numpy_ints_but_not_floats(daemon):
    with tierd.connect(daemon.socket) as c:
        with c.reserve("cache", np.array([5, 0], dtype=np.int64)) as r:
            assert [v.size for v in r.views] == [5, 0]
        with pytest.raises(tierd.InvalidArgument, match="size must be an int >= 0"):
            c.reserve("cache", [1.5])
