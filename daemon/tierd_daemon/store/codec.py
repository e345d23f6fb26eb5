"""Checksums and the optional zstd encoding of stored objects.

The checksum is xxh3-64 of the *logical* bytes (what the user put), so it
verifies the whole path including decompression.
"""
from __future__ import annotations

import threading

import xxhash
import zstandard

_local = threading.local()


def checksum(buf) -> int:
    return xxhash.xxh3_64_intdigest(buf)


def zstd_compress(buf, level: int) -> bytes:
    # Compressor objects are not safe to share between threads; keep one per
    # thread and level.
    cache = getattr(_local, "cctx", None)
    if cache is None:
        cache = _local.cctx = {}
    cctx = cache.get(level)
    if cctx is None:
        cctx = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cctx.compress(buf)


def zstd_decompress(buf, logical_size: int) -> bytes:
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx.decompress(buf, max_output_size=logical_size)
