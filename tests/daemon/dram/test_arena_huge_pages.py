"""A shmem arena is made of 2 MiB pages at start (MADV_COLLAPSE, whatever
shmem_enabled says) and mapped 2 MiB-aligned, so O_DIRECT I/O into it goes
out in large DMA segments; where the kernel cannot, it is plain 4 KiB pages
and the log says why."""
from __future__ import annotations

import gc
import logging
import mmap
import os

import numpy as np
import pytest

from mappings import is_mapped, mapping_kib
from tierd import _libc
from tierd_daemon.dram.arena import HUGE, Arena

MiB = 1 << 20


def collapse_supported() -> bool:
    """Whether this kernel collapses shmem into huge pages, asked of it."""
    fd = os.memfd_create("tierd-probe", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, HUGE)
        os.posix_fallocate(fd, 0, 4096)
        addr = _libc.map_shared_aligned(fd, HUGE, mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            _libc.madvise(addr, HUGE, _libc.MADV_COLLAPSE, "probe")
            return True
        except OSError:
            return False
        finally:
            _libc.munmap(addr, HUGE)
    finally:
        os.close(fd)


needs_collapse = pytest.mark.skipif(
    not collapse_supported(),
    reason="this kernel cannot collapse shmem into huge pages (MADV_COLLAPSE, Linux 6.1+, "
           "or shmem_enabled=deny): the arena stays 4 KiB pages")


@needs_collapse
def test_arena_is_huge_pages_mapped_whole(caplog):
    caplog.set_level(logging.INFO, logger="tierd.dram")
    a = Arena("t", 8 * MiB, 4096)
    try:
        if a.backing == "plain" and "no free huge pages right now" in caplog.text:
            pytest.skip("the kernel had no free 2 MiB pages at this moment (memory "
                        "fragmented); the arena fell back to 4 KiB pages, as it should")
        assert a.backing == "thp", caplog.text
        assert a.addr % HUGE == 0
        # Every 2 MiB is one huge page, mapped by one page-table entry.
        assert mapping_kib(a.addr, "ShmemPmdMapped") == 8 * 1024
        assert not a.array.any(), "a fresh arena reads as zeros"
        assert "shmem huge pages" in caplog.text
    finally:
        a.close()


def test_arena_bytes_are_the_memfd_bytes():
    # What the daemon writes is what a client mapping the fd reads.
    a = Arena("t", 4 * MiB, 4096)
    try:
        pattern = np.arange(a.nbytes, dtype=np.uint64).view(np.uint8)[:a.nbytes]
        a.array[:] = pattern
        with mmap.mmap(a.fd, a.nbytes, prot=mmap.PROT_READ) as other:
            assert np.array_equal(np.frombuffer(other, dtype=np.uint8), pattern)
            del other
    finally:
        a.close()


def test_small_arena_stays_plain_and_says_why(caplog):
    caplog.set_level(logging.INFO, logger="tierd.dram")
    a = Arena("t", 1 * MiB, 4096)
    try:
        assert a.backing == "plain"
        assert "smaller than one huge page" in caplog.text
        a.array[:] = 7
        assert int(a.array.sum()) == 7 * MiB
    finally:
        a.close()


def test_mapping_goes_with_its_last_view():
    a = Arena("t", 4 * MiB, 4096)
    addr = a.addr
    view = a.view(a.allocate(4096), 4096)
    a.close()
    del a
    gc.collect()
    assert is_mapped(addr), "unmapped under a live view"
    view[0] = 1                      # still valid memory
    del view
    gc.collect()
    assert not is_mapped(addr), "the arena mapping outlived its last view"


def test_huge_pages_can_be_turned_off(caplog):
    caplog.set_level(logging.INFO, logger="tierd.dram")
    a = Arena("t", 4 * MiB, 4096, huge_pages=False)
    try:
        assert a.backing == "plain"
        assert mapping_kib(a.addr, "ShmemPmdMapped") == 0
        assert "namespaces.t.huge_pages = false" in caplog.text
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], \
            "a choice the operator made is not a warning"
    finally:
        a.close()
