"""tierd.stitch and Arena.stitch: pieces of a real memfd mapped side by side."""
from __future__ import annotations

import gc
import mmap
import os

import numpy as np
import pytest

import tierd
from mappings import is_mapped
from tierd.arena import Arena
from tierd.stitch import stitch

PAGE = mmap.PAGESIZE


def memfd(nbytes: int) -> tuple[int, np.ndarray]:
    fd = os.memfd_create("tierd-test-stitch")
    os.ftruncate(fd, nbytes)
    view = np.frombuffer(mmap.mmap(fd, nbytes), dtype=np.uint8)
    view[:] = np.arange(nbytes, dtype=np.uint64) % 251
    return fd, view


def test_pieces_read_back_to_back_in_order():
    fd, view = memfd(64 * PAGE)
    try:
        pieces = [(8 * PAGE, 2 * PAGE), (0, PAGE), (40 * PAGE, 100)]
        arr = stitch(fd, pieces, PAGE)
        want = np.concatenate([view[o:o + n] for o, n in pieces])
        assert arr.shape == (want.size,) and np.array_equal(arr, want)
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 1
    finally:
        os.close(fd)


def test_it_is_the_same_memory_not_a_copy():
    fd, view = memfd(16 * PAGE)
    try:
        arr = stitch(fd, [(4 * PAGE, PAGE), (0, PAGE)], PAGE)
        view[4 * PAGE] = 77            # a write through the original mapping...
        view[0] = 78
        assert arr[0] == 77 and arr[PAGE] == 78   # ...shows in the stitched one
    finally:
        os.close(fd)


def test_unmapped_when_the_last_view_is_gone():
    fd, _view = memfd(8 * PAGE)
    try:
        arr = stitch(fd, [(0, PAGE), (2 * PAGE, PAGE)], PAGE)
        part = arr[PAGE:]               # a view keeps the mapping alive
        addr = int(arr.ctypes.data)
        del arr
        gc.collect()
        assert is_mapped(addr) and part[0] == _view[2 * PAGE]
        del part
        gc.collect()
        assert not is_mapped(addr)
    finally:
        os.close(fd)


def test_pieces_that_do_not_meet_on_a_page_are_refused():
    fd, _view = memfd(8 * PAGE)
    try:
        with pytest.raises(AssertionError, match="whole number of pages"):
            stitch(fd, [(0, 100), (PAGE, PAGE)], PAGE)
        with pytest.raises(AssertionError, match="not page-aligned"):
            stitch(fd, [(10, PAGE)], PAGE)
    finally:
        os.close(fd)


def test_arena_stitch_checks_its_views():
    fd, _view = memfd(8 * PAGE)
    arena = Arena("t", os.dup(fd), 8 * PAGE)
    os.close(fd)
    a = arena.read_view(2 * PAGE, PAGE)
    b = arena.read_view(5 * PAGE, 10)
    arr = arena.stitch([a, b])
    assert np.array_equal(arr, np.concatenate([a, b]))
    with pytest.raises(tierd.InvalidArgument, match="not whole pages"):
        arena.stitch([arena.read_view(0, 100), a])          # first piece ends mid-page
    with pytest.raises(tierd.InvalidArgument, match="not whole pages"):
        arena.stitch([arena.read_view(100, PAGE)])          # starts mid-page
    with pytest.raises(tierd.ProtocolError, match="outside the arena"):
        arena.stitch([np.zeros(PAGE, np.uint8)])            # not a view of this arena
