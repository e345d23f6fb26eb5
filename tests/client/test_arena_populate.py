"""The client maps its arena without prefaulting it at connect; the first
write starts a background populate that maps every page (Linux >= 5.14)."""
from __future__ import annotations

import mmap

import numpy as np
import pytest

import tierd
from tierd import _libc
from mappings import mapping_kib as mapped_kib


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


def test_a_huge_page_arena_is_mapped_whole(daemon):
    # The client maps the arena 2 MiB-aligned: where the daemon made it of
    # huge pages, one page-table entry maps each 2 MiB here too, so the
    # populate and first reads cost almost nothing.
    with tierd.connect(daemon.socket) as c:
        backing = c.status()["namespaces"]["default"]["backing"]
        c.put("default", "k", b"x" * 10)
        arena = c._arenas["default"]
        addr = int(arena.view.ctypes.data)
        assert addr % _libc.HUGE_PAGE == 0
        if backing != "thp":
            pytest.skip(f"the daemon's arena is {backing!r} here (see its log): no huge pages "
                        "to map whole")
        arena._populating.join(timeout=60)
        if not populate_write_supported():
            pytest.skip("this kernel refuses MADV_POPULATE_WRITE (Linux < 5.14)")
        assert mapped_kib(addr, "ShmemPmdMapped") == arena.arena_bytes // 1024
