"""tierd.safetensors_io against the real daemon: export -> file -> import, bit-exact."""
import json
import warnings

import numpy as np
import pytest

pytest.importorskip("safetensors", reason="safetensors is not installed (it is a test extra, "
                    "not a runtime dependency): pip install safetensors")
ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes is not installed: bfloat16/float8 "
                                "round trips need it")
import safetensors  # noqa: E402
import safetensors.numpy as stn  # noqa: E402

import tierd  # noqa: E402
from tierd.errors import TierdError  # noqa: E402
from tierd.safetensors_io import TierdWarning, export_snapshot, import_snapshot  # noqa: E402


def _bits(a):
    a = np.asarray(a)
    return a.dtype, a.shape, np.ascontiguousarray(a).view(np.uint8).tobytes()


def _state():
    rng = np.random.default_rng(7)
    f32 = rng.standard_normal((64, 33)).astype(np.float32)
    f32[0, 0] = np.nan
    return {
        "model": {
            "w": f32,
            "w_t": f32.T,                                      # non-contiguous
            "b16": rng.standard_normal(1000).astype(np.float16),
            "bf": rng.standard_normal((3, 5)).astype(ml_dtypes.bfloat16),
            "big": rng.standard_normal(300_000).astype(np.float64),   # > pack size: own chunk
            "layers": [{"i8": np.arange(-5, 5, dtype=np.int8)},
                       {"u64": np.array([0, 2**64 - 1], dtype=np.uint64)}],
        },
        "opt": {"step": 12, "lr": 3e-4, "name": "adamw", "betas": (0.9, 0.999),
                "count": np.int64(41), "mask": rng.random(17) > 0.5,
                "i16": np.arange(9, dtype=np.int16).reshape(3, 3),
                "u8": np.arange(256, dtype=np.uint8), "i32": np.array(-7, dtype=np.int32),
                "u16": np.array([1, 65535], dtype=np.uint16),
                "u32": np.array([4e9], dtype=np.uint32), "empty": np.zeros((0, 4), np.float32)},
        "none": None,
        "huge_int": 2**70,
    }


def _flat(tree, out=None, prefix=""):
    out = {} if out is None else out
    if isinstance(tree, dict):
        for k, v in tree.items():
            _flat(v, out, f"{prefix}.{k}" if prefix else k)
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            _flat(v, out, f"{prefix}.{i}" if prefix else str(i))
    elif isinstance(tree, (np.ndarray, np.generic)):
        out[prefix] = tree
    return out


@pytest.fixture
def client(daemon):
    with tierd.connect(daemon.socket) as c:
        yield c


def test_export_import_round_trip_bit_exact(client, tmp_path):
    state = _state()
    ck = client.checkpoints("st-run", keep_last=5)
    ck.save(10, state).wait("persisted")
    out = tmp_path / "s10.safetensors"
    calls = []
    info = export_snapshot(ck, 10, out, progress=lambda d, t, p: calls.append((d, t, p)))
    flat = _flat(state)
    assert info["tensors"] == len(flat) and info["tree"] is True
    assert calls[-1][0] == calls[-1][1] == info["bytes"] == sum(np.asarray(a).nbytes
                                                                for a in flat.values())
    fetch = [d for d, _, p in calls if p == "fetch"]
    assert fetch == sorted(fetch) and fetch[-1] == info["bytes"]

    # the file on its own, through safetensors itself
    with safetensors.safe_open(str(out), framework="np") as f:
        assert set(f.keys()) == set(flat)
        meta = f.metadata()
        assert meta["tierd.step"] == "10" and meta["tierd.run"] == "st-run"
        assert json.loads(meta["tierd.tree"])["__d"]["opt"]["__d"]["name"] == "adamw"
        assert f.get_slice("model.bf").get_dtype() == "BF16"
    loaded = stn.load_file(str(out))
    for name, a in flat.items():
        assert _bits(loaded[name]) == _bits(a), name
    assert loaded["model.w_t"].shape == (33, 64)

    # back in as another step: the same structure, the same bits
    calls.clear()
    info2 = import_snapshot(ck, 11, out, progress=lambda d, t, p: calls.append((d, t, p)))
    assert info2["tree"] is True and info2["bytes"] == info["bytes"]
    assert calls[-1] == (info["bytes"], info["bytes"], "persist")
    assert ck.latest() == 11
    back = ck.load(11)
    assert set(back) == set(state)
    assert back["opt"]["step"] == 12 and back["opt"]["betas"] == (0.9, 0.999)
    assert back["opt"]["name"] == "adamw" and back["none"] is None and back["huge_int"] == 2**70
    assert isinstance(back["opt"]["count"], np.integer)          # scalars stay scalars
    assert isinstance(back["model"]["layers"], list)
    bflat = _flat(back)
    assert set(bflat) == set(flat)
    for name, a in flat.items():
        assert _bits(bflat[name]) == _bits(a), name

    # and out again: the same file contents (tensors and tree)
    out2 = tmp_path / "s11.safetensors"
    export_snapshot(ck, 11, out2)
    again = stn.load_file(str(out2))
    for name, a in loaded.items():
        assert _bits(again[name]) == _bits(a), name
    ck.close()


def test_float8_and_torch_style_bf16(client, tmp_path):
    names = ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"]
    state = {n: np.arange(-8, 8, dtype=np.float32).astype(getattr(ml_dtypes, n)) for n in names}
    ck = client.checkpoints("f8-run")
    ck.save(1, state).wait("persisted")
    out = tmp_path / "f8.safetensors"
    export_snapshot(ck, None, out)           # None: latest
    with safetensors.safe_open(str(out), framework="np") as f:
        assert f.get_slice("float8_e4m3fn").get_dtype() == "F8_E4M3"
    import_snapshot(ck, 2, out)              # safetensors' numpy loader lacks float8: raw path
    back = ck.load(2)
    for n in names:
        assert _bits(back[n]) == _bits(state[n]), n
    ck.close()


def test_torch_bf16_exports_as_bf16(client, tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    t = torch.randn(4, 6).to(torch.bfloat16)
    ck = client.checkpoints("torch-run")
    ck.save(1, {"w": t}).wait("persisted")
    out = tmp_path / "t.safetensors"
    export_snapshot(ck, 1, out)
    with safetensors.safe_open(str(out), framework="np") as f:
        assert f.get_slice("w").get_dtype() == "BF16"
    got = stn.load_file(str(out))["w"]
    assert got.view(np.uint16).tobytes() == t.view(torch.int16).numpy().tobytes()
    ck.close()


def test_unsupported_dtypes_name_the_tensor(client, tmp_path):
    ck = client.checkpoints("bad-run")
    cases = {
        "c128": np.zeros(3, np.complex128),
        "rec": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f4")]),
        "when": np.array(["2024-01-01"], dtype="datetime64[D]"),
        "txt": np.array(["ab", "c"]),
        "i4": np.zeros(4, dtype=ml_dtypes.int4),
    }
    for i, (name, arr) in enumerate(cases.items()):
        ck.save(i, {"ok": np.ones(2, np.float32), "deep": {name: arr}}).wait("persisted")
        out = tmp_path / f"{name}.safetensors"
        with pytest.raises(TierdError, match=rf"tensor 'deep\.{name}'"):
            export_snapshot(ck, i, out)
        assert not out.exists() and not (tmp_path / f"{name}.safetensors.tierd-tmp").exists()
    ck.close()


def test_non_json_state_is_skipped_with_a_warning(client, tmp_path):
    ck = client.checkpoints("blob-run")
    state = {"w": np.arange(5, dtype=np.float32), "blob": b"\x00\x01", "x": {"y": np.ones(2)}}
    ck.save(3, state).wait("persisted")
    out = tmp_path / "b.safetensors"
    with pytest.warns(TierdWarning, match="not JSON-serialisable"):
        info = export_snapshot(ck, 3, out)
    assert info["tree"] is False
    with safetensors.safe_open(str(out), framework="np") as f:
        assert "tierd.tree" not in f.metadata()
    import_snapshot(ck, 4, out)
    back = ck.load(4)
    assert set(back) == {"w", "x.y"}                          # flat: name -> tensor
    assert _bits(back["x.y"]) == _bits(state["x"]["y"])
    ck.close()


def test_import_a_foreign_file_flat(client, tmp_path):
    path = tmp_path / "foreign.safetensors"
    tensors = {"embed.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
               "lm_head.bias": np.zeros(3, dtype=ml_dtypes.bfloat16)}
    stn.save_file(tensors, str(path), metadata={"format": "pt"})
    ck = client.checkpoints("foreign")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = import_snapshot(ck, 0, path)
    assert info == {"step": 0, "tensors": 2, "bytes": 48 + 6, "tree": False}
    back = ck.load(0)
    assert set(back) == set(tensors)
    for k in tensors:
        assert _bits(back[k]) == _bits(tensors[k])
    ck.close()


def test_import_errors(client, tmp_path):
    ck = client.checkpoints("err-run")
    with pytest.raises(TierdError, match="no such file"):
        import_snapshot(ck, 0, tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(TierdError, match="safetensors"):
        import_snapshot(ck, 0, junk)
    assert ck.steps() == []
    ck.close()
