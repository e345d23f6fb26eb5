"""Dedup, retention, delete, lazy saves, and errors from background persistence."""
from __future__ import annotations

import numpy as np
import pytest

import tierd
from ckpt_writer import state_for

MiB = 1 << 20


def nvme(c):
    c.flush()
    return c.status()["namespaces"]["default"]["nvme_used"]


def test_same_state_twice_writes_almost_nothing(daemon):
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("dedup")
        s = state_for(1)
        ck.save(1, s).wait("persisted")
        st = c.status()["namespaces"]["default"]
        ck.save(2, s).wait("persisted")
        now = c.status()["namespaces"]["default"]
        new = now["bytes_written"] - st["bytes_written"]
        assert new < 64 * 1024, f"an unchanged state wrote {new} new bytes"
        assert now["dedup_bytes"] - st["dedup_bytes"] >= 3 * MiB    # recognised, not written
        s3 = dict(s, model=dict(s["model"], w=s["model"]["w"] + 1))   # one tensor changes
        before = c.status()["namespaces"]["default"]["bytes_written"]
        ck.save(3, s3).wait("persisted")
        new = c.status()["namespaces"]["default"]["bytes_written"] - before
        assert MiB <= new < MiB + 64 * 1024, new                       # just that tensor


def test_retention_and_delete_free_space(daemon):
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("keep", keep_last=2)
        empty = nvme(c)
        for step in range(1, 6):
            ck.save(step, state_for(step)).wait("persisted")
        ck.barrier()
        ck.close()                     # waits for the last retention pass
        ck = c.checkpoints("keep", keep_last=2)
        assert ck.steps() == [4, 5] and ck.latest() == 5
        two = nvme(c)
        ck.delete(5)
        assert ck.steps() == [4] and ck.latest() == 4
        assert nvme(c) < two
        ck.delete(4)
        assert ck.steps() == [] and ck.latest() is None
        assert nvme(c) == empty


def test_lazy_save_contract(daemon):
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("lazy")
        s = state_for(7)
        expect = {"w": s["model"]["w"].copy()}
        h = ck.save(7, {"w": s["model"]["w"]}, lazy=True)
        assert h.status() in ("copying", "staged", "persisted")
        h.wait("staged")              # after this the tensor may change
        s["model"]["w"][:] = 0
        h.wait("persisted", timeout=60)
        assert np.array_equal(ck.load(7)["w"], expect["w"])


def test_background_error_surfaces_on_wait_and_next_call(daemon_factory):
    d = daemon_factory(extra='[namespaces.tight]\ndram_bytes = "32MiB"\nnvme_bytes = "2MiB"\n',
                       server_extra="shutdown_stall_s = 2")
    with tierd.connect(d.socket) as c:
        ck = c.checkpoints("full", ns="tight")
        h = ck.save(1, {"w": np.ones(4 * MiB // 4, np.float32)})   # staged fine, cannot persist
        with pytest.raises(tierd.StoreFull, match="quota"):
            h.wait("persisted", timeout=60)
        assert h.status() == "failed"
        with pytest.raises(tierd.StoreFull):
            ck.steps()                   # the next call reports it once...
        assert ck.steps() == []          # ...then the manager carries on
        assert ck.latest() is None
    # Shutdown cannot write the staged data back: it says so and exits 1
    # instead of hanging.
    assert d.stop() == 1
    assert "NOT persisted and lost: tight: 4.0 MiB" in d.log()


def test_zero_copy_open_is_hot_and_read_only(daemon):
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("zc")
        s = state_for(3)
        ck.save(3, s).wait("persisted")
        with ck.open() as snap:
            w = snap.state["model"]["w"]
            assert np.array_equal(w, s["model"]["w"]) and not w.flags.writeable
            assert w.base is not None                 # a view, not a copy
            assert snap.state["opt"]["step"] == 3
            assert c.status()["namespaces"]["default"]["leases"] > 0
        assert c.status()["namespaces"]["default"]["leases"] == 0
        # Served from DRAM while hot: no NVMe reads for the second open.
        before = c.status()["namespaces"]["default"]["hits_nvme"]
        with ck.open() as snap:
            assert np.array_equal(snap.state["opt"]["m"], s["opt"]["m"])
        assert c.status()["namespaces"]["default"]["hits_nvme"] == before


def test_reader_never_collects_a_writers_inflight_chunks(daemon):
    with tierd.connect(daemon.socket) as c:
        w = c.checkpoints("shared")
        w.save(1, state_for(1)).wait("persisted")
        h = w.save(2, state_for(2), lazy=True)
        h.wait("staged")                               # chunks staged, manifest not yet
        r = c.checkpoints("shared", readonly=True)     # a reader opens meanwhile
        with pytest.raises(tierd.InvalidArgument, match="read-only"):
            r.save(3, {})
        with pytest.raises(tierd.InvalidArgument, match="read-only"):
            r.collect()
        h.wait("persisted")
        assert r.steps() == [1, 2]
        np.testing.assert_array_equal(r.load(2)["model"]["w"], state_for(2)["model"]["w"])
