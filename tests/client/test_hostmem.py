"""load() restores into fresh memory made fast: large tensors get mappings
of their own, not advised for huge pages, populated ahead of the copies by a
thread of their own (hostmem.Populator)."""
from __future__ import annotations

import gc
import mmap

import numpy as np
import pytest

import tierd
from mappings import is_mapped, mapping_flags, mapping_kib, memory_owner as root
from tierd import hostmem

MiB = 1 << 20


def test_small_buffers_come_from_numpy():
    b = hostmem.fresh_buffer(4096)
    assert b.nbytes == 4096 and b.flags.writeable and b.dtype == np.uint8
    assert not isinstance(root(b), mmap.mmap)


def test_large_buffer_is_a_mapping_of_its_own_freed_with_it():
    b = hostmem.fresh_buffer(8 * MiB + 123)
    assert b.nbytes == 8 * MiB + 123 and b.flags.writeable
    assert isinstance(root(b), mmap.mmap)
    addr = int(b.ctypes.data)
    hostmem.populate(b, 0, b.nbytes)
    b[:] = 5
    assert int(b[-1]) == 5 and int(b[0]) == 5
    tail = b[-10:]
    del b
    gc.collect()
    assert is_mapped(addr), "freed under a live view"
    del tail
    gc.collect()
    assert not is_mapped(addr), "the mapping outlived its arrays"


def test_populate_maps_the_range_and_asks_for_no_huge_pages():
    # Measured (tierd/hostmem.py): huge-page buffers waited seconds for
    # compaction after a daemon restart; 4 KiB ones did not.
    b = hostmem.fresh_buffer(16 * MiB)
    addr = int(b.ctypes.data)
    assert "hg" not in mapping_flags(addr), "advised for huge pages"
    hostmem.populate(b, 0, b.nbytes)
    assert mapping_kib(addr, "Rss") >= 16 * 1024 - 4, "populate left pages unmapped"


def test_populate_refuses_a_range_outside_the_buffer():
    b = hostmem.fresh_buffer(4 * MiB)
    with pytest.raises(AssertionError):
        hostmem.populate(b, 0, b.nbytes + 1)


def test_load_hands_out_large_tensors_in_their_own_mappings(daemon):
    big = np.random.default_rng(1).standard_normal(3 * MiB // 4).astype(np.float32)  # 3 MiB
    small = np.arange(100, dtype=np.int64)
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("hostmem")
        ck.save(1, {"big": big, "small": small}).wait("persisted", timeout=60)
        got = ck.load()
        ck.close()
    assert np.array_equal(got["big"], big) and np.array_equal(got["small"], small)
    assert isinstance(root(got["big"]), mmap.mmap)
    assert got["big"].flags.writeable and got["small"].flags.writeable
    got["big"][:] = 0                # the caller's memory: no daemon behind it


def _resident(b: np.ndarray) -> bool:
    return mapping_kib(int(b.ctypes.data), "Rss") >= b.nbytes // 1024 - 4


def test_populator_readies_every_range_in_any_order():
    bufs = [hostmem.fresh_buffer(4 * MiB) for _ in range(6)]
    ranges = [(b, 0, b.nbytes) for b in bufs]
    with hostmem.Populator(ranges) as pop:
        for i in (5, 0, 3, 1, 4, 2):      # the last first: its caller populates it itself
            pop.ready(i)
            assert _resident(bufs[i]), f"range {i} not populated when ready() returned"


def test_populator_close_stops_its_thread_with_ranges_left():
    bufs = [hostmem.fresh_buffer(2 * MiB) for _ in range(64)]
    pop = hostmem.Populator([(b, 0, b.nbytes) for b in bufs])
    pop.close()
    assert not pop._thread.is_alive()
    assert not any(_resident(b) for b in bufs[-8:]), "kept populating after close()"


def test_failed_load_stops_its_populator(daemon, monkeypatch):
    made = []

    class Recorded(hostmem.Populator):
        def __init__(self, ranges):
            super().__init__(ranges)
            made.append(self)
    monkeypatch.setattr(hostmem, "Populator", Recorded)
    rng = np.random.default_rng(2)
    state = {f"w{i}": rng.standard_normal(MiB).astype(np.float32) for i in range(4)}   # 4 MiB each
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("hostmem-fail", chunk_bytes=MiB)
        ck.save(1, state).wait("persisted", timeout=60)
        last_chunk = ck.manifest(1)["chunks"][-1]
        c.delete("default", ck._chunk_key(last_chunk))
        with pytest.raises(tierd.NotFound):
            ck.load()
        ck.close()
    assert made, "load() made no populator"
    assert all(p._stop and not p._thread.is_alive() for p in made), "left running after a failure"
