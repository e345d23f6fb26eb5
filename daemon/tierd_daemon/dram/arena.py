"""A namespace's DRAM arena: one memfd, prefaulted, shared with clients.

Clients of the namespace receive the memfd once (SCM_RIGHTS) and map it;
puts are written into it by the client and gets are read from it in place.
The daemon reads and writes the same pages to NVMe with io_uring (the arena
is registered with the store's ring), so there is no bounce copy.

Backing, best first: hugetlbfs pages (MFD_HUGETLB) when enough are reserved;
else plain shmem with MADV_HUGEPAGE (transparent huge pages for shmem, which
the kernel honours when shmem_enabled allows it); else plain pages. The
choice is logged. posix_fallocate reserves every page at start, so a full
tier is an allocation error in the daemon, never a SIGBUS in a client.
"""
from __future__ import annotations

import logging
import mmap
import os
import time

import numpy as np

from tierd.errors import TierdError
from tierd_daemon.store.allocator import Extent, ExtentAllocator

log = logging.getLogger("tierd.dram")

HUGE = 2 << 20


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

    def __init__(self, ns: str, nbytes: int, page: int) -> None:
        assert page > 0 and nbytes >= page
        self.ns = ns
        self.page = page
        self.nbytes = nbytes = nbytes // HUGE * HUGE if nbytes >= HUGE else nbytes // page * page
        self.fd, self.backing = self._create(ns, nbytes)
        t0 = time.perf_counter()
        try:
            # MAP_POPULATE prefaults our page tables too, so the first I/O
            # into the arena does not pay the first-touch cost.
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            self.mmap = mmap.mmap(self.fd, nbytes, flags=flags)
        except OSError:
            os.close(self.fd)
            raise
        if self.backing == "thp" and hasattr(mmap, "MADV_HUGEPAGE"):
            try:
                self.mmap.madvise(mmap.MADV_HUGEPAGE)
            except OSError:
                pass
        dt = time.perf_counter() - t0
        self.array = np.frombuffer(self.mmap, dtype=np.uint8)
        assert self.array.ctypes.data % page == 0
        self.alloc = ExtentAllocator([nbytes // page])
        log.info("arena %s: %d MiB, %s, prefaulted in %.2f s (%.1f GB/s)", ns, nbytes >> 20,
                 {"hugetlb": "hugetlbfs pages",
                  "thp": f"shmem with transparent huge pages (shmem_enabled={_shmem_thp_mode()})",
                  "plain": f"plain 4 KiB pages (no hugetlb pages reserved; shmem THP is "
                           f"{_shmem_thp_mode()})"}[self.backing],
                 dt, nbytes / max(dt, 1e-9) / 1e9)

    @staticmethod
    def _create(ns: str, nbytes: int) -> tuple[int, str]:
        name = f"tierd-{ns}"
        if nbytes % HUGE == 0 and _hugetlb_free_bytes() >= nbytes:
            fd = -1
            try:
                fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_HUGETLB)
                os.ftruncate(fd, nbytes)
                os.posix_fallocate(fd, 0, nbytes)
                return fd, "hugetlb"
            except OSError as e:
                log.info("arena %s: hugetlbfs pages refused (%s); using shmem", ns, e)
                if fd >= 0:
                    os.close(fd)
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, nbytes)
            os.posix_fallocate(fd, 0, nbytes)
        except OSError as e:
            os.close(fd)
            raise TierdError(f"cannot reserve {nbytes >> 20} MiB of memory for namespace {ns!r} "
                             f"({e.strerror}); lower namespaces.{ns}.dram_bytes") from None
        mode = _shmem_thp_mode()
        return fd, ("thp" if mode in ("always", "within_size", "advise", "force") else "plain")

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
        # Clients keep their own mappings; closing ours is safe.
        try:
            self.mmap.close()
        except BufferError:
            pass  # numpy views still alive; the kernel frees on exit
        os.close(self.fd)
