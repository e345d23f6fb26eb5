"""Checksums and the optional zstd encoding of stored objects.

The checksum is xxh3-64 of the *logical* bytes (what the user put), so it
verifies the whole path including decompression. A content-addressed object
(commit with name_by) is named by its xxh3-128, and that one pass gives its
checksum too (checksum_from_digest), so its bytes are hashed once, not twice.
"""
from __future__ import annotations

import threading

import xxhash
import zstandard

_local = threading.local()


MASK64 = (1 << 64) - 1
# XXH3 (a frozen format since xxHash 0.8.0) computes, for an input over 240
# bytes, the 64-bit hash as the low half of the 128-bit one: both merge the
# same accumulators with the same secret. Shorter inputs take other paths.
# tests/daemon/store/test_store_checksums.py holds the library to it.
XXH3_SHARED_ABOVE = 240


def checksum(buf) -> int:
    return xxhash.xxh3_64_intdigest(buf)


def digest(buf) -> int:
    """xxh3-128 of buf: a content-addressed object's name (digest_hex)."""
    return xxhash.xxh3_128_intdigest(buf)


def digest_hex(d: int) -> str:
    """The name form of a digest; equal to xxhash's xxh3_128_hexdigest."""
    return f"{d:032x}"


def checksum_from_digest(d: int, buf) -> int:
    """checksum(buf), given d = digest(buf), without a second pass over a
    long buf (a short one is hashed again: at most 240 bytes)."""
    if memoryview(buf).nbytes > XXH3_SHARED_ABOVE:
        return d & MASK64
    return checksum(buf)


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
