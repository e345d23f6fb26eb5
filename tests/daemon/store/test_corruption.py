"""Flipped bytes in a data file: a checksum error naming the object, never wrong bytes."""
from __future__ import annotations

import os

import pytest

from tierd.errors import ChecksumError, NotFound
from store_helpers import flip_byte

MiB = 1 << 20


@pytest.mark.parametrize("offset", [0, 4096 + 17, MiB - 1])
def test_flipped_byte_is_a_checksum_error(store, disk_dir, offset):
    data = os.urandom(MiB)
    store.put("default", "victim", data)
    store.put("default", "bystander", b"fine")
    flip_byte(store, disk_dir, "default", "victim", offset)
    with pytest.raises(ChecksumError, match=r"default/b'victim'.*data\.000 pages"):
        store.get("default", "victim")
    with pytest.raises(ChecksumError):
        store.get_into("default", "victim", bytearray(MiB))
    assert store.get("default", "bystander").tobytes() == b"fine"
    rep = store.fsck()
    assert not rep.ok and len(rep.errors) == 1 and "victim" in rep.errors[0]
    # The durable object is kept (to be restored), not silently dropped.
    assert store.contains("default", "victim")


def test_compressed_object_corruption_is_detected(store, disk_dir):
    store.put("packed", "z", bytes(MiB))
    flip_byte(store, disk_dir, "packed", "z", 10)
    with pytest.raises(ChecksumError, match="packed/b'z'"):
        store.get("packed", "z")


def test_cache_namespace_corruption_is_a_miss(store, disk_dir):
    data = os.urandom(10000)
    store.put("cache", "c", data)
    flip_byte(store, disk_dir, "cache", "c", 5)
    with pytest.raises(NotFound, match="damaged copy dropped"):
        store.get("cache", "c")
    assert not store.contains("cache", "c")
    assert store.usage().used_bytes == 0
    store.put("cache", "c", data)
    assert store.get("cache", "c").tobytes() == data


def test_damage_in_a_pipelined_batch_is_named_and_releases_pins(store, disk_dir):
    # More than one pipeline group (16 MiB): the damaged object is in the
    # first group while the next group is still being read.
    data = {f"g{i}": os.urandom(4 * MiB) for i in range(10)}
    store.put_many("default", list(data.items()))
    flip_byte(store, disk_dir, "default", "g1", 100)
    with pytest.raises(ChecksumError, match="g1"):
        store.get_many("default", list(data))
    assert not store._pins, "pins left behind by a failed batch"
    got = store.get_many("default", [k for k in data if k != "g1"])
    assert all(g.tobytes() == data[k] for g, k in zip(got, [k for k in data if k != "g1"]))
