"""commit with name_by: the daemon names objects by the xxh3-128 of their bytes
(hashed once; the same pass is the store's checksum) and deduplicates."""
from __future__ import annotations

import os

import numpy as np
import pytest
import xxhash
from rawwire import DataConn
from rawwire import error_of as _err

import tierd

MiB = 1 << 20


def _fill(r, blobs):
    for v, b in zip(r.views, blobs):
        v[:] = np.frombuffer(b, np.uint8)


def test_named_by_content_deduplicated_and_verified_after_restart(daemon):
    # Sizes on both sides of 240 bytes (where XXH3's 64-bit hash stops being
    # the low half of its 128-bit one) and an exact duplicate.
    blobs = [os.urandom(2 * MiB + 3), b"short object", os.urandom(241), b""]
    blobs.append(blobs[0])
    with tierd.connect(daemon.socket) as c:
        with c.reserve("default", [len(b) for b in blobs]) as r:
            _fill(r, blobs)
            digests, stored = r.commit_by_content("blobs/", "persisted", if_absent=True)
        assert digests == [xxhash.xxh3_128_hexdigest(b) for b in blobs]
        assert stored == [True, True, True, True, False]
        assert c.status()["namespaces"]["default"]["dedup_bytes"] == len(blobs[0])
        # Again: everything exists, nothing is stored.
        with c.reserve("default", [len(b) for b in blobs[:2]]) as r:
            _fill(r, blobs[:2])
            assert r.commit_by_content("blobs/", if_absent=True)[1] == [False, False]
    # A restart empties the DRAM tier: the reads come from NVMe and are
    # verified against the checksum derived from the name's hash.
    daemon.stop()
    daemon.start()
    with tierd.connect(daemon.socket) as c:
        for b in blobs[:4]:
            key = "blobs/" + xxhash.xxh3_128_hexdigest(b)
            assert c.stat("default", key)["checksum"] == xxhash.xxh3_64_intdigest(b)
            with c.get("default", key) as ls:
                assert ls.tier == "nvme" and ls.tobytes() == b


def test_without_if_absent_every_object_is_stored(daemon):
    with tierd.connect(daemon.socket) as c:
        with c.reserve("cache", [4, 4]) as r:
            _fill(r, [b"same", b"same"])
            digests, stored = r.commit_by_content("")
        assert stored == [True, True] and digests[0] == digests[1]
        with c.get("cache", digests[0]) as ls:
            assert ls.tobytes() == b"same"


def test_client_refuses_keys_and_prefix_together(daemon):
    with tierd.connect(daemon.socket) as c:
        r = c.reserve("cache", [1])
        with pytest.raises(tierd.InvalidArgument, match="not both"):
            r._commit(["k"], "staged", False, False, name_prefix="p/")
        r.abort()



def test_wire_refusals_leave_the_allocation_pending(daemon):
    conn = DataConn(daemon.socket)
    try:
        arena = conn.arena("cache")
        a = conn.call("alloc", ns="cache", items=[[None, 5]])["result"][0]
        arena[a["offset"]:a["offset"] + 5] = memoryview(b"hello")
        tok = [a["token"]]
        code, msg = _err(conn.call("commit", ns="cache", tokens=tok, name_prefix=b"p/",
                                   name_by="sha256"))
        assert code == "INVALID_ARGUMENT" and "'xxh3-128'" in msg and "sha256" in msg
        code, msg = _err(conn.call("commit", ns="cache", tokens=tok, name_by="xxh3-128"))
        assert code == "INVALID_ARGUMENT" and "needs a name_prefix" in msg
        code, msg = _err(conn.call("commit", ns="cache", tokens=tok, name_prefix=b"p/"))
        assert code == "INVALID_ARGUMENT" and "name_by" in msg
        code, msg = _err(conn.call("commit", ns="cache", tokens=tok, keys=[b"k"],
                                   name_prefix=b"p/", name_by="xxh3-128"))
        assert code == "INVALID_ARGUMENT" and "not both" in msg
        # The name would exceed the key limit (prefix + 32 hex digits > 400 bytes).
        code, msg = _err(conn.call("commit", ns="cache", tokens=tok, name_prefix=b"p" * 369,
                                   name_by="xxh3-128"))
        assert code == "INVALID_ARGUMENT"
        code, msg = _err(conn.call("commit", ns="cache", tokens=tok, name_prefix=7,
                                   name_by="xxh3-128"))
        assert code == "INVALID_ARGUMENT" and "name_prefix" in msg
        rep = conn.call("commit", ns="cache", tokens=tok, name_prefix=b"p" * 368,
                        name_by="xxh3-128")
        assert rep["ok"], rep
        assert rep["result"] == {"digests": [xxhash.xxh3_128_hexdigest(b"hello")],
                                 "stored": None}
        got = conn.call("get", ns="cache", keys=[b"p" * 368 + rep["result"]["digests"][0].encode()],
                        lease=False)["result"][0]
        assert bytes(arena[got["offset"]:got["offset"] + got["size"]]) == b"hello"
    finally:
        conn.close()
