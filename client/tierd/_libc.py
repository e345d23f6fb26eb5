"""The few libc memory calls Python's mmap module lacks, through ctypes.

mmap at a fixed address (tierd.stitch) and madvise on a range without
holding the GIL (ctypes releases it around foreign calls; mmap.madvise does
not), so a background populate does not stall the caller's threads.
Linux only, as the rest of tierd.
"""
from __future__ import annotations

import ctypes
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
MADV_POPULATE_WRITE = 23        # Linux 5.14


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
