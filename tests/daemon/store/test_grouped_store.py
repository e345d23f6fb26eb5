"""A "grouped" namespace: numeric chunks put with an itemsize are stored as
byte planes, verified on every read, and the caller's buffer is never touched."""
from __future__ import annotations

import os

import numpy as np
import pytest

from tierd.errors import ChecksumError, InvalidArgument, NotFound
from tierd_daemon.dio import aligned_buffer
from tierd_daemon.store import NamespaceConfig, grouped
from tierd_daemon.store.catalog import ENC_GROUPED, ENCODINGS
from store_helpers import flip_byte as _flip

MiB = 1 << 20

NAMESPACES = {
    "default": NamespaceConfig(durable=True),
    "ckpt": NamespaceConfig(compression="grouped"),
    "gcache": NamespaceConfig(durable=False, compression="grouped"),
}


def bf16_normal(n: int, std: float = 0.02, seed: int = 0) -> np.ndarray:
    f = np.random.default_rng(seed).standard_normal(n, dtype=np.float32) * np.float32(std)
    return (f.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)


def adam_state(n: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n, dtype=np.float32)
            * np.float32(1e-3)).view(np.uint8)


@pytest.fixture
def store(make_store):
    return make_store(namespaces=NAMESPACES)


def test_encoding_is_registered():
    assert ENCODINGS[ENC_GROUPED] == "grouped" and ENC_GROUPED == 2
    with pytest.raises(InvalidArgument, match="grouped"):
        NamespaceConfig(compression="grouped2")


def test_round_trip_get_get_into_get_many(store):
    w = np.concatenate([bf16_normal(MiB), np.array([7], np.uint8)])  # odd tail
    s = adam_state(256 * 1024)
    infos = store.put_many("ckpt", [("w", w, 2), ("s", s, 4)])
    for info, arr in zip(infos, (w, s)):
        assert info.encoding == "grouped" and info.size == arr.nbytes
        assert info.stored_size < 0.95 * arr.nbytes
    assert store.stat("ckpt", "w").encoding == "grouped"
    got = store.get("ckpt", "w")
    assert not got.flags.writeable and np.array_equal(got, w)
    out = bytearray(w.nbytes)
    assert store.get_into("ckpt", "w", out) == w.nbytes and bytes(out) == w.tobytes()
    # get_many with out=: aligned and unaligned, oversized buffers
    a = aligned_buffer(w.nbytes + 8192)
    b = np.zeros(s.nbytes + 3, np.uint8)
    assert store.get_many("ckpt", ["w", "s"], out=[a, b]) == [w.nbytes, s.nbytes]
    assert np.array_equal(a[:w.nbytes], w) and np.array_equal(b[:s.nbytes], s)
    arrs = store.get_many("ckpt", ["s", "w"])
    assert np.array_equal(arrs[0], s) and np.array_equal(arrs[1], w)
    assert store.fsck().ok


def test_itemsize_from_numpy_dtype(store):
    f = np.random.default_rng(2).standard_normal(200_000, dtype=np.float32) * np.float32(0.02)
    info = store.put("ckpt", "f", f)          # (key, data): itemsize 4 from the dtype
    assert info.encoding == "grouped"
    assert np.array_equal(store.get("ckpt", "f").view(np.float32), f)


def test_caller_buffer_is_unchanged(store):
    w = bf16_normal(MiB)
    before = w.copy()
    view = memoryview(w)
    store.put_many("ckpt", [("w", view, 2)])
    assert np.array_equal(w, before)
    ba = bytearray(adam_state(100_000).tobytes())
    ba_before = bytes(ba)
    store.put_many("ckpt", [("b", ba, 4)])
    assert bytes(ba) == ba_before
    assert store.get("ckpt", "b").tobytes() == ba_before


def test_random_bytes_stay_raw(store):
    data = os.urandom(MiB)
    info = store.put_many("ckpt", [("r", data, 2)])[0]
    assert info.encoding == "raw" and info.stored_size == len(data)
    assert store.get("ckpt", "r").tobytes() == data


def test_itemsize_one_uses_plain_zstd(store):
    data = np.zeros(MiB, np.uint8)
    data[::97] = 7
    assert store.put_many("ckpt", [("z", data, 1)])[0].encoding == "zstd"
    assert store.put("ckpt", "z2", data.tobytes()).encoding == "zstd"
    assert np.array_equal(store.get("ckpt", "z"), data)


def test_small_objects_and_other_namespaces_stay_raw(store):
    small = bf16_normal(1000)                    # not larger than a page
    assert store.put_many("ckpt", [("s", small, 2)])[0].encoding == "raw"
    assert store.put_many("default", [("w", bf16_normal(MiB), 2)])[0].encoding == "raw"
    assert np.array_equal(store.get("ckpt", "s"), small)


def test_bad_items_are_refused(store):
    for item in [("k", b"x" * 9000, 0), ("k", b"x" * 9000, -2), ("k", b"x" * 9000, 1.5),
                 ("k", b"x" * 9000, True), ("k",), ("k", b"x", 2, 0)]:
        with pytest.raises(InvalidArgument):
            store.put_many("ckpt", [item])
    assert not store.contains("ckpt", "k")


def test_large_itemsize_falls_back_to_zstd(store):
    data = np.zeros(MiB, np.uint8)
    assert store.put_many("ckpt", [("z", data, 64)])[0].encoding == "zstd"
    assert np.array_equal(store.get("ckpt", "z"), data)


def test_survives_reopen(make_store, disk_dir):
    w = bf16_normal(MiB)
    s = make_store(namespaces=NAMESPACES)
    s.put_many("ckpt", [("w", w, 2)])
    s.close()
    s = make_store(namespaces=NAMESPACES)
    assert s.stat("ckpt", "w").encoding == "grouped"
    assert np.array_equal(s.get("ckpt", "w"), w)


@pytest.mark.parametrize("where", ["header", "table", "raw plane", "zstd plane", "tail"])
def test_damage_is_a_checksum_error(store, disk_dir, where):
    w = np.concatenate([bf16_normal(MiB), np.array([9], np.uint8)])
    info = store.put_many("ckpt", [("w", w, 2)])[0]
    assert info.encoding == "grouped"
    blob = grouped.encode(w, 2)     # the same bytes the store wrote
    kinds = [grouped._PLANE.unpack_from(blob, grouped._HEAD.size + k * grouped._PLANE.size)[0]
             for k in range(2)]
    assert kinds == [grouped.PLANE_RAW, grouped.PLANE_ZSTD] and len(blob) == info.stored_size
    offset = {"header": 9, "table": 20 + 3, "raw plane": 38 + 100,
              "zstd plane": 38 + MiB + 5000, "tail": info.stored_size - 1}[where]
    _flip(store, disk_dir, "ckpt", "w", offset)
    with pytest.raises(ChecksumError, match=r"ckpt/b'w'"):
        store.get("ckpt", "w")
    with pytest.raises(ChecksumError):
        store.get_many("ckpt", ["w"], out=[np.empty(w.nbytes, np.uint8)])
    rep = store.fsck()
    assert not rep.ok and "w" in rep.errors[0]


def test_damaged_cache_object_is_a_miss(store, disk_dir):
    w = bf16_normal(MiB)
    assert store.put_many("gcache", [("w", w, 2)])[0].encoding == "grouped"
    _flip(store, disk_dir, "gcache", "w", 9)
    with pytest.raises(NotFound, match="damaged copy dropped"):
        store.get("gcache", "w")
    assert not store.contains("gcache", "w")
