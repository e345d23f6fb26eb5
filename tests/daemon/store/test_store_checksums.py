"""Checksums given by the caller (content naming hashes a chunk once), and the
XXH3 property that lets one xxh3-128 pass give the store's xxh3-64."""
from __future__ import annotations

import os

import pytest
import xxhash

from tierd.errors import ChecksumError, InvalidArgument
from tierd_daemon.store import codec

MiB = 1 << 20


@pytest.mark.parametrize("n", [0, 1, 3, 4, 16, 17, 128, 129, 239, 240, 241, 242, 1000,
                               4096, MiB + 7, 16 * MiB])
def test_checksum_from_digest_is_xxh3_64(n):
    """Above 240 bytes XXH3's 64-bit hash is the low half of its 128-bit one;
    at or below it, checksum_from_digest hashes again. Either way: xxh3-64."""
    data = os.urandom(n)
    d = codec.digest(data)
    assert codec.digest_hex(d) == xxhash.xxh3_128_hexdigest(data)
    assert codec.checksum_from_digest(d, data) == xxhash.xxh3_64_intdigest(data)


def test_given_checksum_is_kept_and_verifies(store):
    data = os.urandom(2 * MiB)
    small = b"tiny object"
    given = [codec.checksum_from_digest(codec.digest(x), x) for x in (data, small)]
    infos = store.put_many("default", [("big", data), ("small", small), ("computed", data)],
                           checksums=[*given, None])
    assert [i.checksum for i in infos] == [*given, xxhash.xxh3_64_intdigest(data)]
    assert store.get("default", "big").tobytes() == data
    assert store.get("default", "small").tobytes() == small
    assert store.fsck().ok


def test_wrong_given_checksum_fails_every_read_never_wrong_bytes(store):
    """Trusted as given: a wrong checksum is caught on the way back, loudly."""
    data = os.urandom(MiB)
    store.put_many("default", [("liar", data)],
                   checksums=[(codec.checksum(data) + 1) & codec.MASK64])
    with pytest.raises(ChecksumError, match="liar"):
        store.get("default", "liar")
    assert not store.fsck().ok


@pytest.mark.parametrize("bad", [[1, 2], [-1], [1 << 64], ["x"], [1.5]])
def test_bad_checksums_argument(store, bad):
    with pytest.raises(InvalidArgument, match="checksum"):
        store.put_many("default", [("k", b"x")], checksums=bad)
    assert not store.contains("default", "k")
