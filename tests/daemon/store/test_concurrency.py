"""Many threads putting, getting and deleting: content always right, space accounted."""
from __future__ import annotations

import threading

import numpy as np

from tierd.errors import NotFound


def content(key: str, gen: int, n: int) -> bytes:
    rng = np.random.default_rng(abs(hash((key, gen))) % 2**32)
    head = f"{key}:{gen}:".encode()
    return head + rng.integers(0, 256, n, dtype=np.uint8).tobytes()


def test_threads_hammer_shared_keys(make_store):
    store = make_store(capacity=128 << 20, staging_bytes=1 << 20)
    keys = [f"k{i}" for i in range(12)]
    errors = []

    def worker(tid):
        rng = np.random.default_rng(tid)
        try:
            for step in range(60):
                key = keys[rng.integers(len(keys))]
                op = rng.integers(3)
                if op == 0:
                    gen = int(rng.integers(1000))
                    store.put("default", key, content(key, gen, int(rng.integers(0, 300_000))))
                elif op == 1:
                    try:
                        got = store.get("default", key).tobytes()
                    except NotFound:
                        continue
                    k, gen, _ = got.split(b":", 2)
                    assert k.decode() == key
                    assert got == content(key, int(gen), len(got) - len(k) - len(gen) - 2)
                else:
                    store.delete_many("default", [key])
        except Exception as e:  # surfaced below with the thread id
            errors.append((tid, repr(e)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    u = store.usage()
    assert u.inflight_bytes == 0 and u.used_bytes == u.referenced_bytes
    assert store.fsck().ok


def test_delete_while_reading_defers_the_free(store):
    """A freed extent that a reader still holds is not reused until it is released."""
    store.put("default", "k", b"x" * 8192)
    [(_, rec)] = store._lookup_and_pin("default", ["k"])
    store.delete("default", "k")
    u = store.usage()
    assert u.used_bytes == 8192 and u.referenced_bytes == 0
    assert store.fsck(verify_data=False).ok   # pinned-freed pages are accounted
    store.put("default", "other", b"y" * 8192)
    assert store._catalog.get(b"default\0other").extents[0] != rec.extents[0]
    store._unpin([rec])
    assert store.usage().used_bytes == 8192
