"""zstd namespaces: compressible objects shrink, others stay raw; bytes never change."""
from __future__ import annotations

import os

import numpy as np


def test_compressible_is_stored_smaller(store):
    data = np.zeros(1 << 20, np.uint8)
    data[::97] = 7
    info = store.put("packed", "z", data)
    assert info.encoding == "zstd" and info.stored_size < data.nbytes // 10
    assert np.array_equal(store.get("packed", "z"), data)
    out = bytearray(data.nbytes)
    store.get_into("packed", "z", out)
    assert bytes(out) == data.tobytes()
    assert store.usage().used_bytes < data.nbytes // 10


def test_incompressible_stays_raw(store):
    data = os.urandom(1 << 20)
    info = store.put("packed", "r", data)
    assert info.encoding == "raw" and info.stored_size == len(data)
    assert store.get("packed", "r").tobytes() == data


def test_other_namespaces_do_not_compress(store):
    info = store.put("default", "z", bytes(1 << 20))
    assert info.encoding == "raw"
