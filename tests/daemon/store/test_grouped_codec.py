"""store/grouped.py: byte-plane coding round-trips every element size and
length, compresses float checkpoints, declines noise, and refuses damage."""
from __future__ import annotations

import os
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tierd_daemon.store import grouped

MiB = 1 << 20


def bf16_normal(n: int, std: float, seed: int = 0) -> np.ndarray:
    """bf16 bit patterns (top 16 bits of float32) of N(0, std), as uint8."""
    f = np.random.default_rng(seed).standard_normal(n, dtype=np.float32) * np.float32(std)
    return (f.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)


def structured(rng: np.random.Generator, itemsize: int, nbytes: int) -> np.ndarray:
    """Bytes whose planes differ: some constant, some from a small alphabet, some noise."""
    n = -(-nbytes // itemsize)
    cols = []
    for _ in range(itemsize):
        mode = rng.integers(3)
        if mode == 0:
            cols.append(np.full(n, rng.integers(256), np.uint8))
        elif mode == 1:
            cols.append(rng.choice(rng.integers(0, 256, 4).astype(np.uint8), n))
        else:
            cols.append(rng.integers(0, 256, n, dtype=np.uint8))
    return np.stack(cols, axis=1).reshape(-1)[:nbytes].copy()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(itemsize=st.integers(1, 16), nbytes=st.integers(0, 70_000), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["structured", "random", "zeros"]), level=st.sampled_from([1, 3]))
def test_round_trip_every_itemsize_and_length(itemsize, nbytes, seed, kind, level):
    rng = np.random.default_rng(seed)
    if kind == "structured":
        data = structured(rng, itemsize, nbytes)
    elif kind == "random":
        data = rng.integers(0, 256, nbytes, dtype=np.uint8)
    else:
        data = np.zeros(nbytes, np.uint8)
    before = data.copy()
    # Force encoding even when it does not pay, so every path is exercised.
    with mock.patch.object(grouped, "MIN_SAVING", -1e12):
        blob = grouped.encode(data, itemsize, level)
    assert np.array_equal(data, before)  # never modifies its input
    if nbytes < itemsize:
        assert blob is None  # not one whole element
        return
    out = grouped.decode(blob, nbytes)
    assert out.dtype == np.uint8 and out.shape == (nbytes,)
    assert np.array_equal(out, data)
    # decode into a caller's (larger) buffer
    dst = np.full(nbytes + 5, 0xAB, np.uint8)
    got = grouped.decode(memoryview(blob), nbytes, out=dst)
    assert np.array_equal(got, data) and np.array_equal(dst[:nbytes], data)
    assert (dst[nbytes:] == 0xAB).all()
    # Without forcing: None, or a blob that saves at least MIN_SAVING and decodes.
    blob = grouped.encode(data, itemsize, level)
    if blob is not None:
        assert len(blob) <= nbytes * (1 - grouped.MIN_SAVING)
        assert np.array_equal(grouped.decode(blob, nbytes), data)


@pytest.mark.parametrize("probe_min", [1 << 20, 0])
def test_large_planes_with_and_without_the_probe(probe_min):
    data = np.concatenate([bf16_normal(3 * MiB, 0.02), np.array([1, 2, 3], np.uint8)])[:-2]
    with mock.patch.object(grouped, "PROBE_MIN_PLANE", probe_min):
        blob = grouped.encode(data, 2)
    assert blob is not None
    assert np.array_equal(grouped.decode(blob, data.nbytes), data)


def test_bf16_weights_compress():
    data = bf16_normal(4 * MiB, 0.02)
    blob = grouped.encode(data, 2)
    assert blob is not None and len(blob) < 0.95 * data.nbytes
    assert np.array_equal(grouped.decode(blob, data.nbytes), data)


@pytest.mark.parametrize("make", [
    lambda r: r.standard_normal(MiB, dtype=np.float32) * np.float32(1e-3),            # exp_avg
    lambda r: np.abs(r.standard_normal(MiB, dtype=np.float32) * np.float32(1e-6)),    # exp_avg_sq
])
def test_fp32_adam_state_compresses(make):
    data = make(np.random.default_rng(1)).view(np.uint8)
    blob = grouped.encode(data, 4)
    assert blob is not None and len(blob) < 0.95 * data.nbytes
    assert np.array_equal(grouped.decode(blob, data.nbytes), data)


@pytest.mark.parametrize("itemsize", [1, 2, 4, 8])
def test_random_bytes_are_declined(itemsize):
    assert grouped.encode(np.frombuffer(os.urandom(2 * MiB), np.uint8), itemsize) is None


def test_bad_itemsize_is_refused():
    for bad in (0, 17, -1):
        with pytest.raises(ValueError):
            grouped.encode(np.zeros(100, np.uint8), bad)


def _blob(itemsize=2, nbytes=300_001):
    data = np.concatenate([bf16_normal(nbytes // 2, 0.02), np.zeros(nbytes % 2, np.uint8)])
    with mock.patch.object(grouped, "PROBE_MIN_PLANE", 1 << 40):
        blob = grouped.encode(data, itemsize)
    assert blob is not None
    return data, bytes(blob)


def test_wrong_logical_size_is_refused():
    data, blob = _blob()
    for size in (data.nbytes - 1, data.nbytes + 1, 0, data.nbytes * 2):
        with pytest.raises(ValueError):
            grouped.decode(blob, size)
    with pytest.raises(ValueError):
        grouped.decode(blob, data.nbytes, out=np.empty(data.nbytes - 1, np.uint8))


def test_truncated_or_extended_blobs_are_refused():
    data, blob = _blob()
    for cut in (0, 1, 10, 23, 40, len(blob) // 2, len(blob) - 1):
        with pytest.raises(ValueError):
            grouped.decode(blob[:cut], data.nbytes)
    with pytest.raises(ValueError):
        grouped.decode(blob + b"\0", data.nbytes)


def test_every_header_and_table_byte_is_checked():
    data, blob = _blob()
    head = grouped._HEAD.size + 2 * grouped._PLANE.size
    for i in range(head):
        for flip in (0x01, 0x80):
            bad = bytearray(blob)
            bad[i] ^= flip
            with pytest.raises(ValueError):
                grouped.decode(bytes(bad), data.nbytes)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_damaged_payload_raises_or_keeps_the_size(d):
    """A flipped payload byte: ValueError, or bytes of exactly the logical size
    (a raw plane or an undetected literal), which the store's checksum catches."""
    data, blob = _CACHED
    bad = bytearray(blob)
    i = d.draw(st.integers(0, len(bad) - 1))
    bad[i] ^= d.draw(st.integers(1, 255))
    try:
        out = grouped.decode(bytes(bad), data.nbytes)
    except ValueError:
        return
    assert out.shape == (data.nbytes,)


_CACHED = _blob(nbytes=20_001)
