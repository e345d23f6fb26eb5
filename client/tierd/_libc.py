"""The few libc memory calls Python's mmap module lacks, through ctypes.

mmap at a chosen address (tierd.stitch, and arenas mapped 2 MiB-aligned so
the kernel can map their huge pages whole) and madvise on a range without
holding the GIL (ctypes releases it around foreign calls; mmap.madvise does
not), so a background populate does not stall the caller's threads.
Linux only, as the rest of tierd.
"""
from __future__ import annotations

import ctypes
import mmap as _mmap
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.madvise.restype = ctypes.c_int
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

_MAP_FAILED = ctypes.c_void_p(-1).value

# The same values on every Linux architecture (asm-generic/mman-common.h);
# Python's mmap module does not export them.
PROT_NONE = 0
MAP_FIXED = 0x10
MAP_NORESERVE = 0x4000
MADV_POPULATE_WRITE = 23        # Linux 5.14
MADV_COLLAPSE = 25              # Linux 6.1


def _error(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def mmap(addr: int | None, length: int, prot: int, flags: int, fd: int, offset: int,
         what: str) -> int:
    got = _libc.mmap(addr, length, prot, flags, fd, offset)
    if got is None or got == _MAP_FAILED:
        raise _error(what)
    return got


def munmap(addr: int, length: int) -> None:
    if _libc.munmap(addr, length) != 0:
        raise _error("munmap")


def madvise(addr: int, length: int, advice: int, what: str) -> None:
    if _libc.madvise(addr, length, advice) != 0:
        raise _error(what)


HUGE_PAGE = 2 << 20


class Mapping:
    """Owns [addr, addr + size) of this process's address space.

    `np.asarray(mapping)` is a uint8 array over its first nbytes; every
    array cut from it keeps it alive, and the range is unmapped when the
    last of them (and the Mapping) is gone, never under a live view."""

    def __init__(self, addr: int, size: int, nbytes: int, writable: bool) -> None:
        assert 0 < nbytes <= size
        self.addr, self.size = addr, size
        self.__array_interface__ = {"version": 3, "shape": (nbytes,), "typestr": "|u1",
                                    "data": (addr, not writable)}

    def __del__(self) -> None:
        if self.addr:
            addr, self.addr = self.addr, 0
            try:
                munmap(addr, self.size)
            except OSError:
                pass    # nothing to do at collection time; the range stays reserved


def map_shared_aligned(fd: int, nbytes: int, prot: int, populate: bool = False,
                       align: int = HUGE_PAGE) -> int:
    """Map fd's first nbytes MAP_SHARED at an `align`-aligned address.

    A huge page of a file can only be mapped whole (one page-table entry)
    where the address and the file offset agree modulo its size, and
    mmap places a file mapping wherever it likes."""
    span = nbytes + align
    base = mmap(None, span, PROT_NONE, _mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS | MAP_NORESERVE,
                -1, 0, "reserve address space")
    addr = -(-base // align) * align
    flags = _mmap.MAP_SHARED | MAP_FIXED | (getattr(_mmap, "MAP_POPULATE", 0) if populate else 0)
    try:
        mmap(addr, nbytes, prot, flags, fd, 0, "mmap of shared memory")
    except OSError:
        munmap(base, span)
        raise
    if addr > base:
        munmap(base, addr - base)
    if base + span > addr + nbytes:
        munmap(addr + nbytes, base + span - addr - nbytes)
    return addr
