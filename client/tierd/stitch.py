"""Page-aligned pieces of a shared file mapped back to back: one array, no copy.

A checkpoint tensor larger than a chunk is stored as several chunks, and the
daemon puts each chunk wherever its arena has room, so the pieces of one
tensor lie apart. Copying them together into fresh memory costs a page fault
per 4 KiB of that memory: measured on the development VM, 0.8 s for 213 MiB,
longer than reading the bytes from NVMe. Instead, a range of address space is
reserved and each piece's pages of the arena memfd are mapped into it in
order (mmap MAP_FIXED over the reservation): the tensor reads as one
contiguous array, and the bytes are the ones the daemon verified.

Python's mmap module cannot map at an address, hence tierd._libc (ctypes).
The mapping is read-only and is unmapped when the last numpy view of it is
gone (never under a live view: that would be a crash, not an error).
"""
from __future__ import annotations

import mmap

import numpy as np

from tierd import _libc


class _Mapping(_libc.Mapping):
    """One stitched mapping (read-only); arrays over it keep it alive."""


def stitch(fd: int, pieces: list[tuple[int, int]], page: int) -> np.ndarray:
    """A read-only uint8 array of the concatenated `pieces` (file offset,
    length) of the shared file `fd`, without copying.

    Every offset must be page-aligned and every length but the last a
    multiple of the page: the pieces then meet exactly in the new mapping.
    """
    assert pieces, "nothing to stitch"
    for i, (off, ln) in enumerate(pieces):
        assert off % page == 0 and ln > 0, f"piece {i}: offset {off} is not page-aligned"
        assert i == len(pieces) - 1 or ln % page == 0, \
            f"piece {i}: length {ln} is not a whole number of pages"
    nbytes = sum(ln for _, ln in pieces)
    size = -(-nbytes // page) * page
    # Reserve the whole range first, so the pieces land next to each other
    # and nothing else can be mapped between them.
    base = _libc.mmap(None, size, _libc.PROT_NONE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0,
                      "reserve address space to stitch into")
    owner = _Mapping(base, size, nbytes, writable=False)    # unmaps the range if a piece fails
    pos = 0
    for off, ln in pieces:
        span = -(-ln // page) * page
        _libc.mmap(base + pos, span, mmap.PROT_READ, mmap.MAP_SHARED | _libc.MAP_FIXED, fd, off,
                   "map a piece of the arena")
        pos += span
    arr = np.asarray(owner)
    assert arr.base is owner and not arr.flags.writeable
    return arr
