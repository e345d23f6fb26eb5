"""Objects from 0 bytes to > 64 MiB, odd sizes and binary keys read back bit-exact."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tierd.errors import NotFound
from tierd_daemon.dio import aligned_buffer

MiB = 1 << 20
SIZES = [0, 1, 511, 4095, 4096, 4097, 65536 + 3, MiB, MiB + 1, 3 * MiB + 4095]


def payload(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("engine", ["io_uring", "threadpool"])
def test_sizes_round_trip(make_store, engine):
    store = make_store(engine=engine)
    for i, n in enumerate(SIZES):
        data = payload(n, i)
        info = store.put("default", f"obj-{n}", data)
        assert info.size == n and info.encoding == "raw"
        got = store.get("default", f"obj-{n}")
        assert got.nbytes == n and got.tobytes() == data
        assert not got.flags.writeable


def test_larger_than_64_mib(make_store):
    store = make_store(capacity=160 * MiB)
    n = 64 * MiB + 12345
    data = np.random.default_rng(1).integers(0, 256, n, dtype=np.uint8)
    store.put("default", b"big", data)
    assert np.array_equal(store.get("default", b"big"), data)
    out = aligned_buffer(n + 4096)
    assert store.get_into("default", b"big", out) == n
    assert np.array_equal(out[:n], data)


@pytest.mark.parametrize("aligned_src", [True, False])
@pytest.mark.parametrize("aligned_dst", [True, False])
def test_aligned_and_unaligned_buffers(store, aligned_src, aligned_dst):
    """Direct (zero-copy) and staged paths produce the same bytes."""
    n = 2 * MiB + 100
    src = aligned_buffer(n + 4096)[: n] if aligned_src else np.empty(n + 1, np.uint8)[1:]
    src[:] = np.frombuffer(payload(n, 7), np.uint8)
    store.put("default", "k", src)
    dst = aligned_buffer(n) if aligned_dst else np.zeros(n + 1, np.uint8)[1:]
    assert store.get_into("default", "k", dst) == n
    assert np.array_equal(dst, src)


def test_binary_and_unicode_keys(store):
    keys = [b"\x00", b"\xff" * 400, "ключ/шаг-1", b"a\x00b", b"slash/and space"]
    for i, k in enumerate(keys):
        store.put("default", k, payload(100 + i, i))
    for i, k in enumerate(keys):
        assert store.get("default", k).tobytes() == payload(100 + i, i)
    listed = set(store.list("default"))
    assert listed == {k if isinstance(k, bytes) else k.encode() for k in keys}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=40), st.integers(0, 70000)),
                min_size=1, max_size=8))
def test_random_batches_match_a_model(store, items):
    model = {}
    for key, n in items:
        model[key] = payload(n, n)
    store.put_many("default", list(model.items()))
    got = store.get_many("default", list(model))
    for (key, data), arr in zip(model.items(), got):
        assert arr.tobytes() == data
    assert store.delete_many("default", list(model)) == [True] * len(model)
    assert store.usage().used_bytes == 0


def test_overwrite_replaces_and_frees(store):
    store.put("default", "k", payload(3 * MiB, 1))
    used = store.usage().used_bytes
    store.put("default", "k", payload(MiB, 2))
    assert store.get("default", "k").tobytes() == payload(MiB, 2)
    assert store.usage().used_bytes == used - 2 * MiB
    assert store.fsck().ok


def test_delete_stat_list_contains(store):
    store.put_many("default", [(f"p/{i}", payload(i * 1000, i)) for i in range(5)])
    st_ = store.stat("default", "p/3")
    assert st_.size == 3000 and st_.extents == 1
    assert list(store.list("default", "p/")) == [f"p/{i}".encode() for i in range(5)]
    store.delete("default", "p/3")
    assert not store.contains("default", "p/3")
    with pytest.raises(NotFound, match="p/3"):
        store.get("default", "p/3")
    with pytest.raises(NotFound):
        store.delete("default", "p/3")
    assert store.delete_many("default", ["p/1", "nope"]) == [True, False]


def test_survives_reopen(make_store, disk_dir):
    s = make_store()
    objs = {f"k{i}": os.urandom(i * 777) for i in range(20)}
    s.put_many("default", list(objs.items()))
    s.delete("default", "k5")
    usage = s.usage()
    s.close()
    s2 = make_store()
    assert s2.usage().used_bytes == usage.used_bytes
    for k, v in objs.items():
        if k == "k5":
            assert not s2.contains("default", k)
        else:
            assert s2.get("default", k).tobytes() == v
    assert s2.fsck().ok


def test_namespaces_are_separate(store):
    store.put("default", "same", b"one")
    store.put("cache", "same", b"two")
    assert store.get("default", "same").tobytes() == b"one"
    assert store.get("cache", "same").tobytes() == b"two"
    assert list(store.list("cache")) == [b"same"]
