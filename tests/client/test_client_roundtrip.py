"""put/get round trips against the real daemon; gets are zero-copy and read-only."""

import numpy as np
import pytest

import tierd
from mappings import memory_owner
from tierd._libc import Mapping


@pytest.fixture
def client(daemon):
    with tierd.connect(daemon.socket, timeout=30) as c:
        yield c


@pytest.mark.parametrize("ns", ["default", "cache"])
@pytest.mark.parametrize("size", [0, 1, 4095, 4096, (1 << 20) + 3])
def test_sizes(client, ns, size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    client.put(ns, f"obj-{size}", data)
    with client.get(ns, f"obj-{size}") as lease:
        assert lease.array.dtype == np.uint8 and lease.array.size == size
        assert lease.tobytes() == data
        assert lease.tier in ("dram", "nvme")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64, np.complex64,
                                   np.bool_])
def test_numpy_dtypes(client, dtype):
    a = (np.arange(3 * 1000) % 7).astype(dtype).reshape(3, 1000)
    client.put("default", "arr", a)
    with client.get("default", "arr") as lease:
        back = lease.array.view(dtype).reshape(a.shape)
        assert np.array_equal(back, a)


def test_other_buffers(client):
    client.put("cache", "b", b"bytes")
    client.put("cache", "ba", bytearray(b"bytearray"))
    client.put("cache", "mv", memoryview(b"xxmemoryview")[2:])
    client.put("cache", "scalar", np.float64(2.5))
    assert client.get("cache", "b").tobytes() == b"bytes"
    assert client.get("cache", "ba").tobytes() == b"bytearray"
    assert client.get("cache", "mv").tobytes() == b"memoryview"
    assert client.get("cache", "scalar").array.view(np.float64)[0] == 2.5


def test_non_contiguous_rejected(client):
    with pytest.raises(tierd.InvalidArgument):
        client.put("cache", "x", np.arange(100)[::3])
    with pytest.raises(tierd.InvalidArgument):
        client.put("cache", "x", np.zeros((10, 10)).T)
    assert not client.contains("cache", "x")


def test_get_is_zero_copy_and_read_only(client):
    payload = np.arange(1 << 16, dtype=np.uint32)
    client.put("default", "zc", payload)
    l1 = client.get("default", "zc")
    l2 = client.get("default", "zc")
    try:
        assert isinstance(memory_owner(l1.array), Mapping)        # a view of the arena mapping
        assert np.shares_memory(l1.array, l2.array)         # same bytes, no copy
        assert not l1.array.flags.writeable
        with pytest.raises(ValueError):
            l1.array[0] = 1
    finally:
        l1.release()
        l2.release()


def test_overwrite_replaces(client):
    client.put("cache", "k", b"one")
    client.put("cache", "k", b"second")
    assert client.get("cache", "k").tobytes() == b"second"
