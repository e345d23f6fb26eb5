"""put_many/get_many/delete_many/contains/list/stat against the real daemon."""
import numpy as np
import pytest

import tierd
from tierd import protocol


@pytest.fixture
def client(daemon):
    with tierd.connect(daemon.socket) as c:
        yield c


def test_many(client):
    items = {f"m/{i:04d}".encode(): np.full(i + 1, i % 251, np.uint8) for i in range(300)}
    client.put_many("default", items)
    leases = client.get_many("default", list(items))
    try:
        assert [ls.key for ls in leases] == list(items)
        for ls in leases:
            assert np.array_equal(ls.array, items[ls.key])
    finally:
        for ls in leases:
            ls.release()
    keys = list(items)[:10] + [b"m/absent"]
    assert client.contains_many("default", keys) == [True] * 10 + [False]
    assert client.contains("default", b"m/0000") and not client.contains("default", "m/absent")
    assert client.delete_many("default", keys) == [True] * 10 + [False]
    assert client.contains_many("default", keys) == [False] * 11


def test_get_many_missing_names_keys_and_releases(client):
    client.put_many("cache", [("a", b"1"), ("b", b"2")])
    with pytest.raises(tierd.NotFound) as ei:
        client.get_many("cache", ["a", "nope1", "b", "nope2"])
    assert "nope1" in str(ei.value) and "nope2" in str(ei.value)
    # the leases on a and b were given back: a delete frees them outright
    assert client.delete_many("cache", ["a", "b"]) == [True, True]


def test_more_than_max_batch(client):
    n = protocol.MAX_BATCH + 100
    keys = [f"big/{i:06d}" for i in range(n)]
    client.put_many("cache", [(k, k.encode()) for k in keys])
    assert all(client.contains_many("cache", keys))
    leases = client.get_many("cache", keys)
    assert all(ls.tobytes() == k.encode() for ls, k in zip(leases, keys))
    for ls in leases:
        ls.release()
    assert sum(client.delete_many("cache", keys)) == n


def test_list_prefix_and_paging(client):
    keys = [f"p/{i:05d}".encode() for i in range(2500)]
    client.put_many("default", [(k, b"x") for k in keys])
    client.put_many("default", [(b"q/1", b"y"), (b"o/1", b"z")])
    assert list(client.list("default", prefix=b"p/")) == keys            # > one page (1000)
    assert list(client.list("default", prefix="p/", page=7))[:20] == keys[:20]
    assert list(client.list("default", prefix=b"p/001")) == keys[100:200]
    assert set(client.list("default")) >= set(keys) | {b"q/1", b"o/1"}
    assert list(client.list("default", prefix=b"zzz")) == []


def test_stat(client):
    client.put("default", "s", b"12345", durability="persisted")
    st = client.stat("default", "s")
    assert st["size"] == 5
    assert st["tier"] in ("dram", "nvme")
    assert {"size", "tier", "state", "checksum", "mtime_ns"} <= set(st)
    with pytest.raises(tierd.NotFound):
        client.stat("default", "no-such")


def test_flush_and_status(client):
    client.put("default", "f", b"data")
    client.flush("default")
    client.flush()
    st = client.status()
    assert isinstance(st, dict)
    assert "default" in client.namespaces and "cache" in client.namespaces
