"""Checkpoint snapshots to and from .safetensors files.

    from tierd.safetensors_io import export_snapshot, import_snapshot
    export_snapshot(ck, 100, "step100.safetensors")     # ck: a CheckpointManager
    import_snapshot(ck, 200, "step100.safetensors")     # saved as step 200, persisted

Tensor names in the file are the checkpoint's dotted paths ("model.layers.0.w").
The non-tensor state (the nested structure, scalars, strings) goes into the
file's metadata as JSON under "tierd.tree" when it is JSON-serialisable
(no bytes, no NaN/inf floats); otherwise it is left out with a warning
(warnings.warn, TierdWarning) and an import gives back a flat {name: array}.

Needs the `safetensors` package (imported lazily: not a runtime dependency of
tierd) and ml_dtypes for bfloat16/float8 tensors.

dtypes: bool, int8..64, uint8..64, float16/32/64, bfloat16 (ml_dtypes or
torch-saved), float8_e4m3fn, float8_e5m2, float8_e4m3fnuz, float8_e5m2fnuz,
float8_e8m0fnu and complex64 where the installed safetensors supports them.
Everything else (complex128, structured, datetime, strings, int4/uint4,
float8_e4m3b11fnuz, ...) raises TierdError naming the tensor. Big-endian
arrays are written little-endian (same values, the safetensors byte order).

Memory: export holds the snapshot's tensors in host memory once (the file
is written by safetensors.numpy.save_file); import maps the file and the
save copies it into the DRAM tier.
"""
from __future__ import annotations

import json
import math
import os
import struct
import warnings
from typing import Callable

import numpy as np

from tierd.errors import InvalidArgument, TierdError

TREE_KEY = "tierd.tree"
FORMAT = "tierd-ckpt-1"

# numpy dtype name -> safetensors dtype code (the header's "dtype")
ST_DTYPES = {
    "bool": "BOOL", "int8": "I8", "uint8": "U8", "int16": "I16", "uint16": "U16",
    "int32": "I32", "uint32": "U32", "int64": "I64", "uint64": "U64",
    "float16": "F16", "float32": "F32", "float64": "F64", "bfloat16": "BF16",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
    "float8_e4m3fnuz": "F8_E4M3FNUZ", "float8_e5m2fnuz": "F8_E5M2FNUZ",
    "float8_e8m0fnu": "F8_E8M0", "complex64": "C64",
}
_FROM_ST = {v: k for k, v in ST_DTYPES.items()}
_ML = {"bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
       "float8_e8m0fnu"}

Progress = Callable[[int, int, str], None]   # (bytes done, bytes total, phase)


class TierdWarning(UserWarning):
    """Something was left out of an export/import (the data itself never is)."""


def _safetensors():
    try:
        import safetensors.numpy as stn
        import safetensors
    except ImportError:
        raise TierdError("safetensors export/import needs the safetensors package: "
                         "pip install safetensors") from None
    return safetensors, stn


def _numpy_dtype(name: str) -> np.dtype:
    if name in _ML:
        try:
            import ml_dtypes
        except ImportError:
            raise TierdError(f"{name} tensors need ml_dtypes: pip install ml_dtypes") from None
        return np.dtype(getattr(ml_dtypes, name))
    return np.dtype(name)


_probed: dict[str, str | None] = {}


def _library_supports(stn, dt: np.dtype) -> str | None:
    """None if this safetensors can write dt, else its error text (probed once per dtype)."""
    if dt.name not in _probed:
        try:
            stn.save({"x": np.zeros(1, dtype=dt)})
            _probed[dt.name] = None
        except Exception as e:   # SafetensorError / ValueError: "Unknown dtype ..."
            _probed[dt.name] = str(e).split(". ")[0]
    return _probed[dt.name]


def _tensor_dtype(stn, t: dict) -> np.dtype:
    """The numpy dtype of a manifest tensor, or TierdError naming it when
    safetensors cannot hold it."""
    from tierd.checkpoint import _np_dtype
    desc = t["dtype"]
    try:
        dt = _np_dtype(desc)
    except TierdError:
        raise
    except Exception:   # torch dtypes numpy lacks (complex32, quantized, ...)
        raise TierdError(f"tensor {t['path']!r}: dtype {desc.get('torch') or desc} has no "
                         "safetensors equivalent") from None
    what = dt.name if dt.fields is None else f"structured {dt.descr}"
    code = ST_DTYPES.get(dt.name) if dt.fields is None and dt.kind not in "SUOMm" else None
    if code is None:
        raise TierdError(f"tensor {t['path']!r}: dtype {what} cannot be stored in safetensors "
                         f"(supported: {', '.join(sorted(ST_DTYPES))})")
    err = _library_supports(stn, dt.newbyteorder("<") if dt.byteorder == ">" else dt)
    if err is not None:
        raise TierdError(f"tensor {t['path']!r}: dtype {dt.name} is not supported by the "
                         f"installed safetensors ({err}); upgrade safetensors")
    return dt


# ---- the tree ------------------------------------------------------------------------

def _tree_to_json(node, tensors: list[dict]):
    """The manifest tree with tensor leaves named by path ({"__t": path}, "__s" for
    numpy scalars); raises ValueError where JSON cannot hold a value."""
    if isinstance(node, list):
        return [_tree_to_json(v, tensors) for v in node]
    if isinstance(node, dict):
        if "__t" in node:
            t = tensors[node["__t"]]
            out = {"__t": t["path"]}
            if t["dtype"].get("scalar"):
                out["__s"] = True
            return out
        if "__d" in node:     # user keys live one level down: a key "__t" is just a key
            return {"__d": {k: _tree_to_json(v, tensors) for k, v in node["__d"].items()}}
        if "__tuple" in node:
            return {"__tuple": [_tree_to_json(v, tensors) for v in node["__tuple"]]}
        return dict(node)     # {"__bigint": "..."}
    if isinstance(node, (bytes, bytearray)):
        raise ValueError("bytes")
    if isinstance(node, float) and not math.isfinite(node):
        raise ValueError(f"non-finite float {node}")
    return node


def _tree_from_json(node, arrays: dict, used: set):
    if isinstance(node, list):
        return [_tree_from_json(v, arrays, used) for v in node]
    if isinstance(node, dict):
        if "__t" in node:
            name = node["__t"]
            if name not in arrays:
                raise KeyError(name)
            used.add(name)
            a = arrays[name]
            return a[()] if node.get("__s") and a.ndim == 0 else a
        if "__d" in node:
            return {k: _tree_from_json(v, arrays, used) for k, v in node["__d"].items()}
        if "__tuple" in node:
            return tuple(_tree_from_json(v, arrays, used) for v in node["__tuple"])
        if "__bigint" in node:
            return int(node["__bigint"])
        raise ValueError(f"unknown node {sorted(node)}")
    return node


# ---- export --------------------------------------------------------------------------

def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def export_snapshot(ck, step: int | None, path, progress: Progress | None = None) -> dict:
    """Write every tensor of snapshot `step` (None: latest) to a .safetensors file.

    The file appears complete or not at all (written beside it, fsynced,
    renamed, directory fsynced). Returns {"step", "tensors", "bytes", "tree"}.
    progress(done, total, phase): phase "fetch" (bytes read from tierd), then
    "write" (0, then total once the file is durable).
    """
    _, stn = _safetensors()
    path = os.fspath(path)
    m = ck.manifest(step)
    step = m["step"]
    tensors = m["tensors"]
    # dtypes first: an unsupported tensor fails before anything is read
    dtypes = [_tensor_dtype(stn, t) for t in tensors]
    seen: dict[str, int] = {}
    for t in tensors:
        if t["path"] in seen:
            raise TierdError(f"tensor name {t['path']!r} occurs twice in step {step} (dict keys "
                             "with dots collide with nested paths); safetensors names are unique")
        seen[t["path"]] = 1
    total = sum(int(t["nbytes"]) for t in tensors)

    outs = [np.empty(int(t["nbytes"]), dtype=np.uint8) for t in tensors]
    need: dict[int, list] = {}
    for i, t in enumerate(tensors):
        pos = 0
        for ci, off, ln in t["segments"]:
            need.setdefault(ci, []).append((i, pos, off, ln))
            pos += ln
    chunk_key = ck._chunk_key
    order = sorted(need)
    done = 0
    if progress:
        progress(0, total, "fetch")
    batch = max(1, (64 << 20) // ck.chunk_bytes)
    for b in range(0, len(order), batch):
        part = order[b:b + batch]
        leases = ck.c.get_many(ck.ns, [chunk_key(m["chunks"][ci]) for ci in part])
        try:
            for ci, ls in zip(part, leases):
                src = ls.array
                for ti, pos, off, ln in need[ci]:
                    outs[ti][pos:pos + ln] = src[off:off + ln]
                    done += ln
        finally:
            for ls in leases:
                ls.release()
        if progress:
            progress(done, total, "fetch")

    arrays = {}
    for t, dt, raw in zip(tensors, dtypes, outs):
        a = raw.view(dt).reshape(tuple(t["shape"]))
        if dt.byteorder == ">":
            a = a.astype(dt.newbyteorder("<"))
        arrays[t["path"]] = a

    metadata = {"format": "np", "tierd.format": FORMAT, "tierd.run": ck.run,
                "tierd.step": str(step)}
    try:
        metadata[TREE_KEY] = json.dumps(_tree_to_json(m["tree"], tensors), allow_nan=False,
                                        separators=(",", ":"))
        has_tree = True
    except ValueError as e:
        has_tree = False
        warnings.warn(f"step {step}: the non-tensor state is not JSON-serialisable ({e}); "
                      f"it is not exported (an import gives a flat name -> tensor dict)",
                      TierdWarning, stacklevel=2)

    if progress:
        progress(0, total, "write")
    tmp = f"{path}.tierd-tmp"
    try:
        stn.save_file(arrays, tmp, metadata=metadata)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path)
    except OSError as e:
        _unlink(tmp)
        raise TierdError(f"cannot write {path}: {e.strerror or e}") from None
    except Exception as e:
        _unlink(tmp)
        raise TierdError(f"cannot write {path}: {e}") from None
    if progress:
        progress(total, total, "write")
    return {"step": step, "tensors": len(tensors), "bytes": total, "tree": has_tree}


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


# ---- import --------------------------------------------------------------------------

def _read_header(path: str) -> tuple[dict, int]:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise TierdError(f"{path}: not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", head)
        if n > 100 << 20:
            raise TierdError(f"{path}: not a safetensors file (header of {n} bytes)")
        try:
            return json.loads(f.read(n)), 8 + n
        except ValueError:
            raise TierdError(f"{path}: not a safetensors file (header is not JSON)") from None


def import_snapshot(ck, step: int, path, progress: Progress | None = None) -> dict:
    """Save the tensors of a .safetensors file as snapshot `step`; returns once persisted.

    The state is the file's nested structure ("tierd.tree" metadata, from
    export_snapshot) when it has one that names exactly its tensors, else a
    flat {name: array} dict. progress(done, total, phase): "read" (bytes read
    from the file), then "persist" (0, then total once persisted).
    Returns {"step", "tensors", "bytes", "tree"}.
    """
    safetensors, _ = _safetensors()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TierdError(f"cannot read {path}: no such file")
    try:
        f = safetensors.safe_open(path, framework="np")
    except Exception as e:
        raise TierdError(f"{path}: not a readable safetensors file ({e})") from None
    raw_header = None
    with f:
        meta = f.metadata() or {}
        names = list(f.keys())
        specs = {}
        for n in names:
            sl = f.get_slice(n)
            code = sl.get_dtype()
            if code not in _FROM_ST:
                raise TierdError(f"tensor {n!r} in {path}: safetensors dtype {code} has no "
                                 "numpy equivalent tierd can store")
            specs[n] = (_numpy_dtype(_FROM_ST[code]), tuple(sl.get_shape()))
        total = sum(dt.itemsize * math.prod(shape) for dt, shape in specs.values())
        arrays, done = {}, 0
        if progress:
            progress(0, total, "read")
        for n in names:
            dt, shape = specs[n]
            try:
                a = f.get_tensor(n)
            except Exception:
                # safetensors' numpy loader knows no float8 dtypes (it looks them up on
                # numpy itself): read the bytes at the header's offsets instead.
                if raw_header is None:
                    raw_header = _read_header(path)
                a = _read_raw(path, raw_header, n, dt, shape)
            if a.dtype != dt:
                a = a.view(dt)
            arrays[n] = np.ascontiguousarray(a).reshape(shape)
            done += arrays[n].nbytes
            if progress:
                progress(done, total, "read")

    state, has_tree = arrays, False
    if TREE_KEY in meta:
        try:
            used: set = set()
            state = _tree_from_json(json.loads(meta[TREE_KEY]), arrays, used)
            if used != set(arrays):
                raise ValueError(f"it leaves out {len(set(arrays) - used)} tensor(s) "
                                 f"of the file")
            has_tree = True
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            state = arrays
            warnings.warn(f"{path}: ignoring {TREE_KEY} metadata that does not match the "
                          f"file's tensors ({type(e).__name__}: {e}); importing a flat "
                          f"name -> tensor dict", TierdWarning, stacklevel=2)
    if progress:
        progress(0, total, "persist")
    ck.save(step, state).wait("persisted")
    if progress:
        progress(total, total, "persist")
    return {"step": step, "tensors": len(arrays), "bytes": total, "tree": has_tree}


def _read_raw(path: str, header_and_base, name: str, dt: np.dtype, shape: tuple) -> np.ndarray:
    header, base = header_and_base
    begin, end = header[name]["data_offsets"]
    if end - begin != dt.itemsize * math.prod(shape):
        raise InvalidArgument(f"tensor {name!r} in {path}: {end - begin} bytes for shape "
                              f"{list(shape)} of {dt.name}")
    with open(path, "rb") as fh:
        fh.seek(base + begin)
        buf = fh.read(end - begin)
    if len(buf) != end - begin:
        raise TierdError(f"tensor {name!r} in {path}: file is truncated")
    return np.frombuffer(bytearray(buf), dtype=dt).reshape(shape)
