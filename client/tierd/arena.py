"""A namespace's DRAM arena, mapped into this process.

The daemon sends the arena's memfd once per namespace per connection
(open_ns, SCM_RIGHTS). The client maps it MAP_SHARED read/write, 2 MiB-
aligned (so the daemon's huge pages map whole here too); puts copy
straight into it at the offsets alloc returns, gets hand out read-only numpy
views of it (zero-copy). The fd stays open while the Arena lives, so objects
lying apart in the arena can be mapped again side by side (`stitch`).

A mapping outlives its connection: after a daemon restart the client opens
the namespace again (a new arena), but views of the old mapping that Leases
still hold stay valid memory; the mapping (a tierd._libc.Mapping, the base
of every view) is unmapped when the last view is gone, so `close()` only
drops this Arena's own references.
"""
from __future__ import annotations

import mmap
import os
import threading
import weakref

import numpy as np

from tierd import _libc
from tierd.errors import InvalidArgument, ProtocolError
from tierd.stitch import stitch


class Arena:
    """One namespace's shared arena: `arena_bytes` of memfd, mapped once."""

    def __init__(self, ns: str, fd: int, arena_bytes: int, page_size: int = 4096,
                 durable: bool = False) -> None:
        if not isinstance(arena_bytes, int) or arena_bytes <= 0:
            os.close(fd)
            raise ProtocolError(f"open_ns {ns!r}: bad arena_bytes {arena_bytes!r}")
        self.ns = ns
        self.arena_bytes = arena_bytes
        self.page_size = page_size
        self.durable = bool(durable)
        try:
            # 2 MiB-aligned: where the daemon's arena is made of huge pages
            # they are then mapped whole here too (a page-table entry per
            # 2 MiB), so populating and first reads cost almost nothing.
            addr = _libc.map_shared_aligned(fd, arena_bytes, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        # Mappings (this one, stitched ones) hold their own reference to the
        # file; the fd is only needed to make new ones.
        self._fd = fd
        self._close_fd = weakref.finalize(self, os.close, fd)
        # One writable uint8 view over the whole mapping; every read view is a
        # slice of it, so `lease.array.base` leads back to this mapping.
        self.view = np.asarray(_libc.Mapping(addr, arena_bytes, arena_bytes, writable=True))
        # Writable page-table entries for the whole arena, made in the
        # background (populate()) from the first write on, or earlier when a
        # writer announces itself: without them a put faults once per 4 KiB
        # (measured: 1 GiB copied in 350 ms instead of 60-85), but making
        # them up front (MAP_POPULATE) cost ~0.1-0.15 s per GiB of arena on
        # the development VM, paid by connect: seconds on a large arena
        # before the first call. A reader never needs them (read faults map
        # 16 pages at a time: 1 GiB of views touched in ~30 ms).
        self._populating: threading.Thread | None = None
        self._populate_lock = threading.Lock()
        self._stop_populating = threading.Event()

    def populate(self) -> None:
        """Start mapping the whole arena writable in the background (once)."""
        if self._populating is not None:
            return
        with self._populate_lock:
            if self._populating is None:
                self._populating = threading.Thread(target=_populate,
                                                    args=(self.view, self._stop_populating),
                                                    daemon=True, name=f"tierd-populate-{self.ns}")
                self._populating.start()

    def _check(self, offset: int, size: int, what: str) -> None:
        if not (isinstance(offset, int) and isinstance(size, int)) or offset < 0 or size < 0 \
                or offset + size > self.arena_bytes:
            raise ProtocolError(f"{what} in namespace {self.ns!r}: offset {offset!r} + size "
                                f"{size!r} lies outside the arena of {self.arena_bytes} bytes")

    def slice(self, offset: int, size: int) -> np.ndarray:
        """A writable uint8 view of [offset, offset+size): an allocation to fill."""
        if size == 0:
            return np.empty(0, np.uint8)
        self._check(offset, size, "alloc")
        self.populate()
        return self.view[offset:offset + size]

    def read_view(self, offset: int, size: int) -> np.ndarray:
        """A read-only uint8 view of [offset, offset+size) of the arena (no copy)."""
        if size == 0:
            offset = min(max(offset, 0), self.arena_bytes) if isinstance(offset, int) else 0
        self._check(offset, size, "get")
        v = self.view[offset:offset + size]
        v.flags.writeable = False
        return v

    def stitch(self, views: list[np.ndarray]) -> np.ndarray:
        """One read-only array over read views of this arena, in order, without
        copying: each view's pages are mapped again, next to the previous
        one's. Every view must start on a page and all but the last must be
        whole pages (else InvalidArgument: copy them instead). Like a
        Lease's array, it shows the daemon's pages only while they are
        leased."""
        base = int(self.view.ctypes.data)
        pieces = []
        for i, v in enumerate(views):
            off = int(v.ctypes.data) - base
            self._check(off, v.nbytes, "stitch")
            if off % self.page_size or (i < len(views) - 1 and v.nbytes % self.page_size) \
                    or v.nbytes == 0:
                raise InvalidArgument(f"stitch: piece {i} ({v.nbytes} bytes at arena offset "
                                      f"{off}) is not whole pages")
            pieces.append((off, v.nbytes))
        return stitch(self._fd, pieces, self.page_size)

    def close(self) -> None:
        """Unmap if no view is alive; otherwise when the last view is gone."""
        self._close_fd()
        self.view = None
        # The populate thread holds a view of the whole mapping: stop it
        # (it checks between 64 MiB slices) so the mapping can go now.
        self._stop_populating.set()
        th = self._populating
        if th is not None and th is not threading.current_thread():
            th.join()
        # The mapping itself goes with its last view: now, unless Leases or
        # snapshots still read from it.


POPULATE_SLICE = 64 << 20


def _populate(view: np.ndarray, stop: threading.Event) -> None:
    """Map every page of `view` writable, a slice at a time, off the GIL,
    until done or `stop` is set (Arena.close).

    Holding `view` keeps the mapping from being closed meanwhile. A kernel
    without MADV_POPULATE_WRITE (before 5.14) refuses it: pages are then
    mapped on first touch, as without this thread.
    """
    base, size = int(view.ctypes.data), int(view.nbytes)
    for off in range(0, size, POPULATE_SLICE):
        if stop.is_set():
            return
        try:
            _libc.madvise(base + off, min(POPULATE_SLICE, size - off),
                          _libc.MADV_POPULATE_WRITE, "populate the arena")
        except OSError:
            return


def as_bytes_array(data) -> np.ndarray:
    """The bytes of a put value as a flat uint8 array, without copying.

    bytes, bytearray, memoryview and numpy arrays of any (non-object) dtype
    are accepted; they must be C-contiguous (a copy would hide a cost the
    caller should see), else InvalidArgument.
    """
    if isinstance(data, np.ndarray):
        arr = data
    elif isinstance(data, np.generic):
        arr = np.asarray(data)
    elif isinstance(data, (bytes, bytearray)):
        return np.frombuffer(data, dtype=np.uint8)
    elif isinstance(data, memoryview):
        if not data.c_contiguous:
            raise InvalidArgument("put: memoryview data must be C-contiguous")
        return np.frombuffer(data.cast("B") if data.ndim != 1 or data.format != "B" else data,
                             dtype=np.uint8) if data.nbytes else np.empty(0, np.uint8)
    else:
        raise InvalidArgument(f"put: data must be bytes, bytearray, memoryview or a numpy "
                              f"array, not {type(data).__name__}")
    if arr.dtype.hasobject:
        raise InvalidArgument(f"put: numpy arrays of dtype {arr.dtype} hold Python objects, "
                              "not bytes")
    if not arr.flags.c_contiguous:
        raise InvalidArgument("put: numpy array must be C-contiguous "
                              "(use np.ascontiguousarray to copy it first)")
    if arr.nbytes == 0:
        return np.empty(0, np.uint8)
    return arr.reshape(-1).view(np.uint8)
