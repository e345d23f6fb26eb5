"""Dtype-aware lossless coding of numeric chunks ("grouped" compression).

The bytes of an array of numbers are not alike: in float data the sign and
exponent bytes take few values (weights ~ N(0, 0.02) sit in a handful of
binades) while the mantissa bytes are close to uniform noise. Compressing
the interleaved bytes hides that structure from the entropy coder; so the
chunk is split into *byte planes* first (plane k = byte k of every element,
little-endian: for bf16 plane 1 is sign + exponent[7:1], plane 0 is
exponent[0] + mantissa; for fp32 plane 3 is sign + exponent[7:1], planes
0-2 mantissa) and each plane is zstd'ed on its own, or kept raw when zstd
does not shrink it. A tail shorter than one element is kept raw.

Blob layout (little-endian), self-describing and checked by decode:

    "TDG1" | u8 version | u8 itemsize | u16 0 | u64 n elements | u32 tail bytes
    itemsize x (u8 codec (0 raw, 1 zstd) | u64 stored length)
    the planes in order | the raw tail

encode returns None when the whole blob would save less than MIN_SAVING
(3%): the caller stores the bytes raw. It reads the input and writes new
buffers only; the caller's array is never modified.

Level, by measurement (perf/bench_codec.py, recorded in perf/RESULTS.md;
2-core VM, 16 MiB chunks): on the sign/exponent plane zstd level 1 is both
smaller and faster than level 3 (0.37 vs 0.42 of the plane; whole bf16
N(0, 0.02) chunk: ratio 0.684 vs 0.712, encode 0.60 vs 0.30 GB/s, decode
1.6 vs 1.2 GB/s; fp32 alike): the gain is in the entropy coding of
literals, and level 3's deeper match search only finds short matches that
cost more than they save. Negative levels are a little faster but lose
most of the gain (0.66-0.76 of the plane). Hence DEFAULT_LEVEL = 1.

Planes that look incompressible (mantissa bytes) are probed on a sample
(PROBE_SAMPLES spread slices) and, when the sample does not shrink by
MIN_SAVING, kept raw without running zstd over the whole plane.

Finer bit fields (bf16 sign + 8-bit exponent apart from the 7-bit mantissa
instead of byte planes) were measured at the entropy bound: 10.55 vs 10.68
bits per element for N(0, 0.02) bf16, ~1% of the chunk, not worth the bit
shuffling; byte planes only.
"""
from __future__ import annotations

import struct

import numpy as np
import zstandard

from tierd_daemon.store import codec

MAGIC = b"TDG1"
VERSION = 1
MAX_ITEMSIZE = 16
DEFAULT_LEVEL = 1
MIN_SAVING = 0.03          # below this the caller stores raw
PROBE_MIN_PLANE = 1 << 20  # planes at least this large are probed first
PROBE_SAMPLES = 4
PROBE_SLICE = 32 << 10

PLANE_RAW = 0
PLANE_ZSTD = 1

_HEAD = struct.Struct("<4sBBHQI")
_PLANE = struct.Struct("<BQ")


def _planes(data: np.ndarray, itemsize: int, n: int) -> np.ndarray:
    """(itemsize, n) contiguous byte planes of the first n elements: one copy."""
    return np.ascontiguousarray(data[:n * itemsize].reshape(n, itemsize).T)


def _worth_compressing(plane: np.ndarray, level: int) -> bool:
    n = plane.nbytes
    if n < PROBE_MIN_PLANE:
        return True
    step = n // PROBE_SAMPLES
    sample = np.concatenate([plane[i * step:i * step + PROBE_SLICE] for i in range(PROBE_SAMPLES)])
    return len(codec.zstd_compress(sample, level)) < sample.nbytes * (1 - MIN_SAVING)


def encode(data: np.ndarray, itemsize: int, level: int = DEFAULT_LEVEL) -> bytes | None:
    """Byte-plane + zstd coding of a flat uint8 array of itemsize-byte elements.

    None when it would not save MIN_SAVING of the bytes (store them raw).
    """
    if not isinstance(data, np.ndarray):
        data = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    data = data.reshape(-1).view(np.uint8)
    if not isinstance(itemsize, (int, np.integer)) or not 1 <= itemsize <= MAX_ITEMSIZE:
        raise ValueError(f"itemsize must be 1..{MAX_ITEMSIZE}, got {itemsize!r}")
    itemsize = int(itemsize)
    size = data.nbytes
    n, tail = divmod(size, itemsize)
    if n == 0:
        return None
    planes = _planes(data, itemsize, n) if itemsize > 1 else data[:n].reshape(1, n)
    entries, parts = [], []
    for k in range(itemsize):
        plane = planes[k]
        packed = None
        if _worth_compressing(plane, level):
            packed = codec.zstd_compress(plane, level)
            if len(packed) >= n:
                packed = None
        if packed is None:
            entries.append(_PLANE.pack(PLANE_RAW, n))
            parts.append(plane)
        else:
            entries.append(_PLANE.pack(PLANE_ZSTD, len(packed)))
            parts.append(packed)
    head = _HEAD.pack(MAGIC, VERSION, itemsize, 0, n, tail)
    total = len(head) + len(entries) * _PLANE.size + sum(len(p) if isinstance(p, bytes) else p.nbytes
                                                         for p in parts) + tail
    if total > size * (1 - MIN_SAVING):
        return None
    blob = b"".join((head, *entries, *parts, data[n * itemsize:]))  # one copy
    assert len(blob) == total
    return blob


def _dctx() -> zstandard.ZstdDecompressor:
    d = getattr(codec._local, "grouped_dctx", None)
    if d is None:
        d = codec._local.grouped_dctx = zstandard.ZstdDecompressor()
    return d


def decode(blob, logical_size: int, out: np.ndarray | None = None) -> np.ndarray:
    """The logical bytes of an encode()d blob as a uint8 array of logical_size.

    Every length is checked against the header and logical_size before any
    allocation, so a damaged blob raises ValueError (never returns data of
    another size and never allocates more than logical_size). With `out`
    (a writable uint8 array of at least logical_size bytes) the bytes land
    in out[:logical_size], which is returned.
    """
    mv = memoryview(blob).cast("B") if not isinstance(blob, np.ndarray) else \
        memoryview(blob.reshape(-1).view(np.uint8))
    if len(mv) < _HEAD.size:
        raise ValueError(f"grouped blob too short ({len(mv)} bytes)")
    magic, ver, itemsize, _pad, n, tail = _HEAD.unpack_from(mv)
    if magic != MAGIC:
        raise ValueError(f"not a grouped blob (magic {bytes(magic)!r})")
    if ver != VERSION or _pad != 0:
        raise ValueError(f"grouped blob version {ver}/{_pad} is not {VERSION}/0")
    if not 1 <= itemsize <= MAX_ITEMSIZE or tail >= itemsize:
        raise ValueError(f"grouped blob: bad itemsize {itemsize} / tail {tail}")
    if n * itemsize + tail != logical_size:
        raise ValueError(f"grouped blob holds {n} x {itemsize} + {tail} bytes, "
                         f"expected {logical_size}")
    pos = _HEAD.size + itemsize * _PLANE.size
    if len(mv) < pos:
        raise ValueError("grouped blob: truncated plane table")
    table = [_PLANE.unpack_from(mv, _HEAD.size + k * _PLANE.size) for k in range(itemsize)]
    if pos + sum(length for _, length in table) + tail != len(mv):
        raise ValueError(f"grouped blob: {len(mv)} bytes do not match its plane table")
    if out is None:
        out = np.empty(logical_size, dtype=np.uint8)
    else:
        out = out.reshape(-1).view(np.uint8)
        if out.nbytes < logical_size:
            raise ValueError(f"out holds {out.nbytes} bytes, need {logical_size}")
        out = out[:logical_size]
    elems = out[:n * itemsize].reshape(n, itemsize)
    for k, (kind, length) in enumerate(table):
        src = mv[pos:pos + length]
        pos += length
        if kind == PLANE_RAW:
            if length != n:
                raise ValueError(f"grouped blob: raw plane {k} has {length} bytes, expected {n}")
            plane = np.frombuffer(src, dtype=np.uint8)
        elif kind == PLANE_ZSTD:
            try:
                # Checked before decompress() allocates what the frame declares.
                if zstandard.frame_content_size(src) != n:
                    raise ValueError(f"grouped blob: plane {k} does not declare {n} bytes")
                raw = _dctx().decompress(src, max_output_size=n)
            except zstandard.ZstdError as e:
                raise ValueError(f"grouped blob: plane {k} does not decompress ({e})") from None
            if len(raw) != n:
                raise ValueError(f"grouped blob: plane {k} decompressed to {len(raw)} bytes, "
                                 f"expected {n}")
            plane = np.frombuffer(raw, dtype=np.uint8)
        else:
            raise ValueError(f"grouped blob: plane {k} has unknown codec {kind}")
        elems[:, k] = plane
    out[n * itemsize:] = np.frombuffer(mv[pos:pos + tail], dtype=np.uint8)
    return out
