"""Allocator properties: no overlap, no leak, coalescing, derivation from the catalog."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tierd.errors import StoreFull
from tierd_daemon.store.allocator import Extent, ExtentAllocator, OverlapError


def pages_of(extents):
    return {(e.file, p) for e in extents for p in range(e.page, e.end)}


class AllocatorMachine(RuleBasedStateMachine):
    """Random allocate/free sequences against a model of which pages are live."""

    def __init__(self):
        super().__init__()
        self.files = [64, 17, 128]
        self.alloc = ExtentAllocator(self.files)
        self.live: list[list[Extent]] = []

    @rule(n=st.integers(min_value=1, max_value=80))
    def allocate(self, n):
        free_before = self.alloc.free_pages
        largest_before = self.alloc.largest_free
        try:
            got = self.alloc.allocate(n)
        except StoreFull:
            assert n > free_before, "StoreFull although enough pages were free"
            assert self.alloc.free_pages == free_before, "a failed allocation changed state"
            return
        assert sum(e.npages for e in got) == n
        if n <= largest_before:
            assert len(got) == 1, "split although one free extent could hold the object"
        new = pages_of(got)
        for ex in self.live:
            assert not (pages_of(ex) & new), "allocated pages overlap a live object"
        self.live.append(got)

    @precondition(lambda self: self.live)
    @rule(i=st.integers(min_value=0, max_value=10**6))
    def free(self, i):
        ex = self.live.pop(i % len(self.live))
        self.alloc.free(ex)

    @invariant()
    def accounted(self):
        self.alloc.check()  # coalesced, ordered, indexes in step
        used = sum(len(pages_of(ex)) for ex in self.live)
        assert self.alloc.used_pages == used, "leak: used pages != live pages"
        free = pages_of(self.alloc.free_extents())
        live = set().union(*(pages_of(ex) for ex in self.live)) if self.live else set()
        assert not (free & live)
        assert len(free) + len(live) == sum(self.files)

    @invariant()
    def derivable(self):
        # The free space derived from the live extents (what open() does from
        # the catalog) is exactly the allocator's.
        derived = ExtentAllocator.from_used(self.files, [e for ex in self.live for e in ex])
        assert sorted(derived.free_extents()) == sorted(self.alloc.free_extents())


TestAllocatorMachine = AllocatorMachine.TestCase
TestAllocatorMachine.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


def test_contiguous_when_possible():
    a = ExtentAllocator([100])
    x = a.allocate(10)
    y = a.allocate(10)
    a.free(x)
    # 10 free at the start, 80 at the end: a 50-page object must not be split.
    assert a.allocate(50) == [Extent(0, 20, 50)]
    # best fit: a 10-page request goes into the 10-page hole, not the tail
    assert a.allocate(10) == [Extent(0, 0, 10)]
    assert y == [Extent(0, 10, 10)]


def test_fragmented_allocation_splits_largest_first():
    a = ExtentAllocator([30])
    parts = [a.allocate(5) for _ in range(6)]
    a.free(parts[0]); a.free(parts[2]); a.free(parts[4])  # three 5-page holes
    got = a.allocate(12)
    assert sum(e.npages for e in got) == 12 and len(got) == 3
    a.check()


def test_free_coalesces_neighbours():
    a = ExtentAllocator([12])
    x, y, z = a.allocate(4), a.allocate(4), a.allocate(4)
    a.free(x); a.free(z); a.free(y)
    assert a.free_extents() == [Extent(0, 0, 12)]


@given(st.integers(min_value=1, max_value=1000))
def test_store_full_is_exact(n):
    a = ExtentAllocator([500])
    if n > 500:
        with pytest.raises(StoreFull, match="store full"):
            a.allocate(n)
    else:
        a.allocate(n)
        assert a.free_pages == 500 - n


def test_double_free_is_refused():
    a = ExtentAllocator([10])
    x = a.allocate(3)
    a.free(x)
    with pytest.raises(AssertionError, match="double free"):
        a.free(x)


def test_overlapping_catalog_is_detected():
    with pytest.raises(OverlapError, match="overlap"):
        ExtentAllocator.from_used([10], [Extent(0, 0, 5), Extent(0, 4, 2)])
    with pytest.raises(OverlapError, match="outside"):
        ExtentAllocator.from_used([10], [Extent(0, 8, 5)])
