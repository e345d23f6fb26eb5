"""A namespace's DRAM arena: one memfd, prefaulted, shared with clients.

Clients of the namespace receive the memfd once (SCM_RIGHTS) and map it;
puts are written into it by the client and gets are read from it in place.
The daemon reads and writes the same pages to NVMe with io_uring (the arena
is registered with the store's ring), so there is no bounce copy.

Backing, best first: hugetlbfs pages (MFD_HUGETLB) when enough are reserved;
else shmem made of huge pages at start (MADV_COLLAPSE, Linux 6.1+, which
works whatever shmem_enabled says, short of "deny"); else plain 4 KiB
pages. The choice is logged.
posix_fallocate reserves every page at start, so a full tier is an
allocation error in the daemon, never a SIGBUS in a client.

Why huge pages matter here even without hugetlbfs: every NVMe read and
write of the tier is O_DIRECT into these pages, and the device sees one DMA
segment per physically contiguous run. Measured on the development VM
(virtio disk), a cold 1 GiB read into 4 KiB arena pages went out as ~2100
requests of ~500 KiB while fio's reads were ~860 KiB; see ARCHITECTURE.md.
The mapping is placed 2 MiB-aligned because a huge page of a file can only
be mapped (and collapsed) where address and file offset agree mod 2 MiB;
clients map it aligned too (tierd.arena).
"""
from __future__ import annotations

import errno
import logging
import mmap
import os
import time

import numpy as np

from tierd import _libc
from tierd.errors import TierdError
from tierd_daemon.store.allocator import Extent, ExtentAllocator

log = logging.getLogger("tierd.dram")

HUGE = _libc.HUGE_PAGE
_RW = mmap.PROT_READ | mmap.PROT_WRITE


def _hugetlb_free_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        free = int(info["HugePages_Free"].split()[0])
        size = int(info["Hugepagesize"].split()[0]) * 1024
        return free * size if size == HUGE else 0
    except (OSError, KeyError, ValueError):
        return 0


def _shmem_thp_mode() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/shmem_enabled") as f:
            text = f.read()
        return text[text.index("[") + 1:text.index("]")]
    except (OSError, ValueError):
        return "unknown"


class Arena:
    """Page-granular, contiguous allocations inside one shared mapping."""

    def __init__(self, ns: str, nbytes: int, page: int, huge_pages: bool = True) -> None:
        assert page > 0 and nbytes >= page
        self.ns = ns
        self.page = page
        self.nbytes = nbytes = nbytes // HUGE * HUGE if nbytes >= HUGE else nbytes // page * page
        t0 = time.perf_counter()
        self.fd, hugetlb = self._create(ns, nbytes)
        try:
            if hugetlb:
                self.addr, why_not_huge = _libc.map_shared_aligned(
                    self.fd, nbytes, _RW, populate=True), None
            else:
                self.addr, why_not_huge = _map_shmem(ns, self.fd, nbytes, huge_pages)
        except BaseException:
            os.close(self.fd)
            raise
        dt = time.perf_counter() - t0
        self.backing = "hugetlb" if hugetlb else "thp" if why_not_huge is None else "plain"
        # The mapping goes with the last numpy view of it (never under one).
        self.array = np.asarray(_libc.Mapping(self.addr, nbytes, nbytes, writable=True))
        assert self.array.ctypes.data % page == 0
        self.alloc = ExtentAllocator([nbytes // page])
        what = {"hugetlb": "hugetlbfs pages",
                "thp": f"shmem huge pages (MADV_COLLAPSE; shmem_enabled={_shmem_thp_mode()})",
                "plain": f"plain 4 KiB pages ({why_not_huge}; DMA into it goes in 4 KiB "
                         f"segments, so NVMe requests are smaller)"}[self.backing]
        # Plain pages on a large arena cost NVMe bandwidth: say so louder.
        level = logging.WARNING if self.backing == "plain" and nbytes >= HUGE and huge_pages \
            else logging.INFO
        log.log(level, "arena %s: %d MiB, %s, reserved and mapped in %.2f s (%.1f GB/s)", ns,
                nbytes >> 20, what, dt, nbytes / max(dt, 1e-9) / 1e9)

    @staticmethod
    def _create(ns: str, nbytes: int) -> tuple[int, bool]:
        """The memfd and whether it is hugetlbfs: those pages (reserved here)
        when enough are free, else shmem (reserved by _map_shmem, after it
        tried for huge pages)."""
        name = f"tierd-{ns}"
        if nbytes % HUGE == 0 and _hugetlb_free_bytes() >= nbytes:
            fd = -1
            try:
                fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_HUGETLB)
                os.ftruncate(fd, nbytes)
                os.posix_fallocate(fd, 0, nbytes)
                return fd, True
            except OSError as e:
                log.info("arena %s: hugetlbfs pages refused (%s); using shmem", ns, e)
                if fd >= 0:
                    os.close(fd)
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, nbytes)
        except OSError:
            os.close(fd)
            raise
        return fd, False

    def allocate(self, nbytes: int) -> Extent | None:
        """One contiguous run for nbytes (clients see a single offset), or None."""
        npages = -(-nbytes // self.page)
        if npages == 0:
            return Extent(0, 0, 0)
        return self.alloc.allocate_contiguous(npages)

    def free(self, e: Extent) -> None:
        if e.npages:
            self.alloc.free([e])

    def view(self, e: Extent, nbytes: int) -> np.ndarray:
        start = e.page * self.page
        assert nbytes <= e.npages * self.page
        return self.array[start:start + nbytes]

    def offset(self, e: Extent) -> int:
        return e.page * self.page

    def close(self) -> None:
        # Clients keep their own mappings; ours goes with the last numpy view
        # of it (see __init__), so only the fd is closed here.
        self.array = None
        os.close(self.fd)


def _map_shmem(ns: str, fd: int, nbytes: int, huge_pages: bool) -> tuple[int, str | None]:
    """Reserve every page of the shmem memfd and map them, 2 MiB-aligned and
    populated.

    Shmem is made of huge pages where the kernel can: one page of each
    2 MiB is allocated, MADV_COLLAPSE turns each such range into one
    huge page (filling the rest with zeros, whatever shmem_enabled
    says), and only then is the remainder reserved. Measured on the
    development VM, that costs about what prefaulting 4 KiB pages does
    (5.9 s vs 6.1-7.7 s for 2.6 GiB while its memory was slow), where
    collapsing already-populated pages cost 1.4 s/GiB more. It must
    happen before the store registers the arena with its rings:
    registered pages are pinned, and pinned pages cannot be collapsed.
    Returns (address, None) or (address, why the pages are not huge)."""
    why = "smaller than one huge page" if huge_pages else \
        f"namespaces.{ns}.huge_pages = false"
    if huge_pages and nbytes % HUGE == 0:
        addr = _libc.map_shared_aligned(fd, nbytes, _RW)
        try:
            why = _collapse(fd, addr, nbytes)
            _reserve(ns, fd, nbytes)
            if why is None:
                # Page tables for the huge pages (one entry per 2 MiB).
                _libc.madvise(addr, nbytes, _libc.MADV_POPULATE_WRITE,
                              "madvise(MADV_POPULATE_WRITE)")
                return addr, None
        except BaseException:
            _libc.munmap(addr, nbytes)
            raise
        _libc.munmap(addr, nbytes)
    _reserve(ns, fd, nbytes)
    return _libc.map_shared_aligned(fd, nbytes, _RW, populate=True), why


def _reserve(ns: str, fd: int, nbytes: int) -> None:
    """Allocate every page now: a full tier is an error here, never a SIGBUS."""
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as e:
        raise TierdError(f"cannot reserve {nbytes >> 20} MiB of memory for namespace {ns!r} "
                         f"({e.strerror}); lower namespaces.{ns}.dram_bytes") from None


def _collapse(fd: int, addr: int, nbytes: int) -> str | None:
    """Make the 2 MiB-aligned shared mapping at addr huge pages; None when
    done, else why not (the pages then stay 4 KiB, which works)."""
    try:
        for off in range(0, nbytes, HUGE):
            os.posix_fallocate(fd, off, 4096)   # a seed page per huge page
    except OSError as e:
        return f"seed pages refused: {e.strerror}"   # _reserve then says what to do
    try:
        _libc.madvise(addr, nbytes, _libc.MADV_COLLAPSE, "madvise(MADV_COLLAPSE)")
    except OSError as e:
        return {errno.EINVAL: "this kernel cannot collapse shmem into huge pages "
                              f"(MADV_COLLAPSE, Linux 6.1+; shmem_enabled={_shmem_thp_mode()})",
                errno.EAGAIN: "no free huge pages right now (memory fragmented)",
                errno.ENOMEM: "no free huge pages right now (memory fragmented)"}.get(
            e.errno, f"MADV_COLLAPSE: {e.strerror}")
    return None
