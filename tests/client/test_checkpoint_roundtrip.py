"""Checkpoint round trips: every numpy dtype, bf16/fp16, 0-d, empty,
non-contiguous, large (several chunks), thousands of tiny tensors, unicode
names, the non-tensor state; unsupported objects are a TypeError naming the path."""
from __future__ import annotations

import numpy as np
import pytest

import tierd

MiB = 1 << 20


def assert_same(a, b, path="state"):
    assert type(a) is type(b) or (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)), \
        f"{path}: {type(a)} != {type(b)}"
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{path}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), f"{path}: bytes differ"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def every_dtype():
    rng = np.random.default_rng(0)
    out = {}
    for name in ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "float16", "float32", "float64", "longdouble", "complex64", "complex128",
                 "clongdouble"]:
        dt = np.dtype(name)
        raw = rng.integers(0, 256, 37 * dt.itemsize, dtype=np.uint8)
        out[name] = raw.view(dt).reshape(37)
    out["datetime64"] = np.arange(5).astype("datetime64[ns]")
    out["timedelta64"] = np.arange(5).astype("timedelta64[s]")
    out["bytes"] = np.array([b"ab", b"cde"], dtype="S3")
    out["str"] = np.array(["ключ", "x"], dtype="U4")
    out["void"] = np.frombuffer(b"0123456789ab", dtype="V4")
    out["structured"] = np.zeros(3, dtype=[("a", "<i4"), ("b", ">f8", (2,))])
    out["big_endian"] = np.arange(7, dtype=">u4")
    return out


def test_every_numpy_dtype_and_shape(daemon):
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("dtypes")
        base = np.arange(60, dtype=np.float32).reshape(6, 10)
        state = {
            "dtypes": every_dtype(),
            "zero_d": np.array(3.25), "scalar": np.float16(1.5), "empty": np.zeros((0, 4), np.int8),
            "noncontig": base[:, ::3], "transposed": base.T, "fortran": np.asfortranarray(base),
            "py": {"lr": 1e-3, "step": 10, "name": "adamw", "blob": b"\x00\xff", "none": None,
                   "flag": True, "huge": 2**80, "tuple": (1, "two", 3.0), "nested": [[1, 2], {}]},
        }
        ck.save(1, state).wait("persisted")
        got = ck.load()
        expect = dict(state)
        for k in ("noncontig", "transposed", "fortran"):
            expect[k] = np.ascontiguousarray(state[k])   # layout is not part of the value
        assert_same(expect, got)


def test_bf16_and_fp16(daemon):
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 in numpy needs ml_dtypes")
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((256, 512)) * 0.02).astype(ml_dtypes.bfloat16)
    h = rng.standard_normal(1000).astype(np.float16)
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("bf16")
        ck.save(5, {"w": w, "h": h}).wait("persisted")
        got = ck.load()
        assert got["w"].dtype == w.dtype and got["w"].tobytes() == w.tobytes()
        assert got["h"].dtype == np.float16 and np.array_equal(got["h"], h)


def test_large_tensors_span_chunks(daemon_factory):
    d = daemon_factory(dram="128MiB", capacity="320MiB")
    rng = np.random.default_rng(2)
    big = rng.integers(0, 2**31, 9 * MiB, dtype=np.int32)   # 36 MiB: 3 chunks of 16 MiB
    with tierd.connect(d.socket) as c:
        ck = c.checkpoints("big", chunk_bytes=16 * MiB)
        ck.save(1, {"big": big, "also": big[:1000].copy()}).wait("persisted")
        m = ck.manifest(1)
        assert len(m["tensors"][0]["segments"]) == 3
        got = ck.load()
        assert np.array_equal(got["big"], big) and np.array_equal(got["also"], big[:1000])


def test_thousands_of_tiny_tensors_and_unicode_names(daemon):
    state = {f"layer.{i}.норма/β": np.full(i % 7 + 1, i, np.int16) for i in range(3000)}
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("tiny")
        ck.save(1, state).wait("persisted")
        m = ck.manifest(1)
        assert len(m["chunks"]) < 10, "tiny tensors must be packed, not one object each"
        assert_same(state, ck.load())
        part = ck.load(names=["layer.42.норма/β"])
        assert list(part) == ["layer.42.норма/β"]


@pytest.mark.parametrize("bad, where", [
    ({"a": object()}, "state['a']"),
    ({"a": [1, {"b": {1, 2}}]}, "state['a'][1]['b']"),
    ({"a": {3: np.zeros(2)}}, "state['a']: dict keys must be str"),
    ({"a": np.array([object()])}, "state['a']: arrays of Python objects"),
])
def test_unsupported_objects_name_their_path(daemon, bad, where):
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("bad")
        with pytest.raises(TypeError) as ei:
            ck.save(1, bad)
        assert str(ei.value).startswith(where), str(ei.value)
        assert ck.steps() == [] and ck.latest() is None


def test_torch_tensors(daemon):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    t = {"w": torch.randn(64, 32).to(torch.bfloat16), "i": torch.arange(10), "f": torch.rand(3)}
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("torch")
        ck.save(1, t).wait("persisted")
        got = ck.load(as_torch=True)
        for k in t:
            assert got[k].dtype == t[k].dtype and torch.equal(got[k], t[k]), k
