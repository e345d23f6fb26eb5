"""A data file too small for the next put: a clear error, and the store stays usable."""
from __future__ import annotations

import os

import pytest

from tierd.errors import InvalidArgument, StoreFull

MiB = 1 << 20


def test_store_full_then_usable(make_store):
    store = make_store(capacity=8 * MiB)
    store.put("default", "a", os.urandom(5 * MiB))
    with pytest.raises(StoreFull, match="store full: need 1024 pages, 768 free.*capacity"):
        store.put("default", "b", os.urandom(4 * MiB))
    # Nothing was leaked or half-written.
    assert not store.contains("default", "b")
    u = store.usage()
    assert u.used_bytes == 5 * MiB and u.inflight_bytes == 0
    # Still serves reads and smaller writes, and frees on delete.
    store.put("default", "c", os.urandom(2 * MiB))
    store.delete("default", "a")
    store.put("default", "b", os.urandom(4 * MiB))
    assert store.fsck().ok


def test_full_batch_commits_nothing(make_store):
    store = make_store(capacity=4 * MiB)
    with pytest.raises(StoreFull):
        store.put_many("default", [(f"k{i}", os.urandom(MiB)) for i in range(5)])
    assert store.usage().objects == 0 and store.usage().used_bytes == 0


def test_fragmented_store_still_fits(make_store):
    """Free space in holes is usable: a large object spans several extents."""
    store = make_store(capacity=8 * MiB)
    for i in range(8):
        store.put("default", f"k{i}", os.urandom(MiB))
    for i in range(0, 8, 2):
        store.delete("default", f"k{i}")
    data = os.urandom(3 * MiB + 10)
    info = store.put("default", "big", data)
    assert info.extents > 1
    assert store.get("default", "big").tobytes() == data
    assert store.fsck().ok


def test_oversize_object_is_refused(make_store):
    store = make_store(capacity=8 * MiB, max_object_bytes=MiB)
    with pytest.raises(InvalidArgument, match="exceeds the largest object"):
        store.put("default", "k", os.urandom(MiB + 1))
