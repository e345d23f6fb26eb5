"""Fresh, writable host memory for restored tensors, made fast.

A restore that hands out writable arrays (`load()`) must put every byte in
memory the caller owns, and on a VM the first touch of fresh memory, not the
copy, sets the pace. Two measured lessons (development VM, 1 GiB, THP mode
"madvise", defrag "madvise"):

- Huge pages are a trap here. numpy advises MADV_HUGEPAGE on large arrays,
  and with defrag=madvise every huge page then waits for direct compaction
  when free memory is fragmented (as it is right after a daemon restart
  frees and takes back its arena): cold loads of the benchmark snapshot
  took 5.4-8.2 s with huge-page buffers, 0.7-1.1 s with 4 KiB ones (3
  interleaved rounds); filling a fresh numpy array took 11-13 s in some
  rounds of an isolated test and 0.12 s in others.
- Populating the pages ahead (MADV_POPULATE_WRITE, off the GIL) is cheaper
  than faulting them one by one during the copy: 0.71-0.85 s against
  0.84-1.15 s in the same rounds.

- The first touch does not depend on the data, so it need not wait for it:
  faulting the buffers in on a thread of its own from the start of a
  restore, while the daemon reads from NVMe, overlaps the two.

So a large buffer gets its own anonymous mapping with no advice (the kernel
still uses huge pages where they are free for the taking, with THP
"always", and never stalls for them), and a `Populator` faults the ranges
in, in the order they will be filled, ahead of the copies; a copy that
catches up populates its range itself. Small buffers come from numpy as
usual. Without MADV_POPULATE_WRITE (Linux < 5.14) pages fault as they are
written.
"""
from __future__ import annotations

import mmap
import threading

import numpy as np

from tierd import _libc

HUGE = 2 << 20
PAGE = mmap.PAGESIZE


def fresh_buffer(nbytes: int) -> np.ndarray:
    """A writable uint8 array of nbytes; a mapping of its own (not advised
    for huge pages, unlike numpy's) from 2 MiB.

    The mapping is freed with the last array that views it (numpy keeps the
    mmap object as the array's base)."""
    assert nbytes >= 0
    if nbytes < HUGE:
        return np.empty(nbytes, dtype=np.uint8)
    mm = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
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


class Populator:
    """Faults ranges of fresh buffers in, in order, on a thread of its own.

    ranges: (buffer, start, stop) in the order they will be filled. The
    thread claims them one by one; `ready(i)` (called by whoever is about to
    fill range i) returns once range i is populated: at once if done, after
    the thread finishes it if it is on it, and otherwise the caller claims
    and populates it itself, so nothing waits behind the thread's backlog.
    Each range is populated exactly once. close() stops the thread (after the
    range it is on) and must be called, also when the restore fails.
    """

    def __init__(self, ranges: list[tuple[np.ndarray, int, int]]) -> None:
        self._ranges = ranges
        self._claimed = [False] * len(ranges)
        self._populated = [threading.Event() for _ in ranges]
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="tierd-populate", daemon=True)
        self._thread.start()

    def _populate_if_unclaimed(self, i: int) -> bool:
        with self._lock:
            if self._claimed[i]:
                return False
            self._claimed[i] = True
        try:
            populate(*self._ranges[i])
        finally:
            self._populated[i].set()
        return True

    def _run(self) -> None:
        for i in range(len(self._ranges)):
            if self._stop:
                return
            self._populate_if_unclaimed(i)

    def ready(self, i: int) -> None:
        if not self._populate_if_unclaimed(i):
            self._populated[i].wait()

    def close(self) -> None:
        self._stop = True
        self._thread.join()

    def __enter__(self) -> "Populator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
