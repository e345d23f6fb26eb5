"""Bad input gets a clear error and changes nothing."""
from __future__ import annotations

import numpy as np
import pytest

from tierd.errors import InvalidArgument, TierdError, UnknownNamespace
from tierd_daemon.store import Store, StoreConfig


def test_unknown_namespace(store):
    with pytest.raises(UnknownNamespace, match="'nope'.*configured: cache, default, packed"):
        store.put("nope", "k", b"x")
    with pytest.raises(UnknownNamespace):
        store.get("nope", "k")


@pytest.mark.parametrize("key, needle", [
    (b"", "must not be empty"),
    (b"x" * 401, "exceeds the limit"),
    (42, "must be bytes or str"),
])
def test_bad_keys(store, key, needle):
    with pytest.raises(InvalidArgument, match=needle):
        store.put("default", key, b"data")
    assert store.usage().objects == 0


def test_bad_data(store):
    with pytest.raises(InvalidArgument, match="contiguous"):
        store.put("default", "k", np.zeros((4, 4))[:, 1])
    with pytest.raises(InvalidArgument, match="bytes-like"):
        store.put("default", "k", 12345)


def test_duplicate_key_in_one_batch(store):
    with pytest.raises(InvalidArgument, match="twice"):
        store.put_many("default", [("a", b"1"), ("a", b"2")])
    assert not store.contains("default", "a")


def test_batch_is_all_or_nothing(store):
    with pytest.raises(InvalidArgument):
        store.put_many("default", [("good", b"1"), (b"", b"2")])
    assert not store.contains("default", "good")
    assert store.usage().used_bytes == 0


def test_get_into_too_small_or_readonly(store):
    store.put("default", "k", b"x" * 5000)
    with pytest.raises(InvalidArgument, match="holds 10 bytes"):
        store.get_into("default", "k", bytearray(10))
    with pytest.raises(InvalidArgument, match="writable"):
        store.get_into("default", "k", bytes(8192))
    assert store.fsck().ok  # pins were released


def test_second_process_lock(store, disk_dir):
    with pytest.raises(TierdError, match="in use by another process"):
        Store.open(str(disk_dir / "store"), StoreConfig(capacity=64 << 20))


def test_closed_store(make_store):
    s = make_store()
    s.close()
    with pytest.raises(TierdError, match="closed"):
        s.get("default", "k")
