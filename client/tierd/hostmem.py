"""Fresh, writable host memory for restored tensors, made fast.

A restore that hands out writable arrays (`load()`) must put every byte in
memory the caller owns, and on a VM the first touch of fresh memory, not the
copy, sets the pace: measured on the development VM, copying 1 GiB into
fresh 4 KiB pages took 0.36-0.45 s (one fault per page), and into a fresh
mapping with transparent huge pages that faulted during the copy 0.1-1.6 s,
but populating the huge-page mapping first (MADV_POPULATE_WRITE: 44-57 ms)
and then copying (51 ms) took ~0.1 s every time.

So a large buffer gets its own anonymous mapping, advised for huge pages
(THP "madvise" mode, the common default, honours it), and whoever fills a
range populates it first (`populate`, which releases the GIL). Small
buffers come from numpy as usual. Without THP or MADV_POPULATE_WRITE
(Linux < 5.14) the same calls work and pages fault as they are written.
"""
from __future__ import annotations

import mmap

import numpy as np

from tierd import _libc

HUGE = 2 << 20
PAGE = mmap.PAGESIZE


def fresh_buffer(nbytes: int) -> np.ndarray:
    """A writable uint8 array of nbytes; a mapping of its own from 2 MiB.

    The mapping is freed with the last array that views it (numpy keeps the
    mmap object as the array's base)."""
    assert nbytes >= 0
    if nbytes < HUGE:
        return np.empty(nbytes, dtype=np.uint8)
    mm = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            mm.madvise(mmap.MADV_HUGEPAGE)
        except OSError:
            pass            # THP off or unsupported: 4 KiB pages, still correct
    return np.frombuffer(mm, dtype=np.uint8)


def populate(buf: np.ndarray, start: int, stop: int) -> None:
    """Fault in buf[start:stop] writable ahead of filling it (best effort)."""
    assert 0 <= start <= stop <= buf.nbytes
    if stop - start < HUGE:
        return              # a few faults: not worth a system call
    base = int(buf.ctypes.data)
    lo = (base + start) // PAGE * PAGE
    hi = -(-(base + stop) // PAGE) * PAGE
    try:
        _libc.madvise(lo, hi - lo, _libc.MADV_POPULATE_WRITE, "madvise(MADV_POPULATE_WRITE)")
    except OSError:
        pass                # before Linux 5.14: the copy faults the pages instead
