"""The client maps its arena without prefaulting it at connect; the first
write starts a background populate that maps every page (Linux >= 5.14)."""
from __future__ import annotations

import mmap

import numpy as np
import pytest

import tierd
from tierd import _libc


def mapped_kib(addr: int) -> int:
    """Rss (KiB) of the mapping that holds addr, from /proc/self/smaps."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= addr < hi
            elif inside and head == "Rss:":
                return int(line.split()[1])
    raise AssertionError(f"no mapping holds {addr:#x}")


def populate_write_supported() -> bool:
    """Whether this kernel takes MADV_POPULATE_WRITE (Linux 5.14+), asked of it."""
    page = mmap.PAGESIZE
    addr = _libc.mmap(None, page, mmap.PROT_READ | mmap.PROT_WRITE,
                      mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0, "probe")
    try:
        _libc.madvise(addr, page, _libc.MADV_POPULATE_WRITE, "probe")
        return True
    except OSError:
        return False
    finally:
        _libc.munmap(addr, page)


def test_readers_do_not_populate_writers_do(daemon):
    with tierd.connect(daemon.socket) as w:
        w.put("default", "k", np.arange(1000, dtype=np.int32))
    with tierd.connect(daemon.socket) as c:
        info = c.namespace_info("default")
        arena = c._arenas["default"]
        with c.get("default", "k") as ls:
            assert np.array_equal(ls.array.view(np.int32), np.arange(1000, dtype=np.int32))
        assert arena._populating is None, "a reader populated the whole arena"
        addr = int(arena.view.ctypes.data)
        assert mapped_kib(addr) < info["arena_bytes"] // 1024 // 2
        c.put("default", "k2", b"x" * 10)
        assert arena._populating is not None
        arena._populating.join(timeout=60)
        assert not arena._populating.is_alive()
        if not populate_write_supported():
            pytest.skip("this kernel refuses MADV_POPULATE_WRITE (Linux < 5.14): pages map "
                        "on first touch instead")
        assert mapped_kib(addr) == info["arena_bytes"] // 1024
        assert c.get("default", "k2").tobytes() == b"x" * 10


def test_a_checkpoint_writer_populates_at_open_a_reader_never(daemon):
    with tierd.connect(daemon.socket) as c:
        c.checkpoints("r", readonly=True)
        c.namespace_info("default")             # maps the arena
        assert c._arenas["default"]._populating is None
    with tierd.connect(daemon.socket) as c:
        c.checkpoints("w")                      # before any save
        populating = c._arenas["default"]._populating
        assert populating is not None
        populating.join(timeout=60)
        assert not populating.is_alive()
