"""The io_uring engine: a thin wrapper over the C ring in native/tierd_native.c.

A whole batch goes to C in one call (no per-op Python work), and cffi releases
the GIL while C waits on the disk.
"""
from __future__ import annotations

import errno
import logging
import os
import resource
import threading
from typing import Sequence

import numpy as np

from .base import Engine
from .ops import OP_DTYPE

from tierd_daemon._native import ffi, lib  # ImportError: open_engine falls back

log = logging.getLogger("tierd.engine")


def _errname(err: int) -> str:
    return errno.errorcode.get(err, str(err))


def _memlock_note() -> str:
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft == resource.RLIM_INFINITY:
        return "RLIMIT_MEMLOCK is unlimited"
    return f"RLIMIT_MEMLOCK is {soft / (1 << 20):g} MiB"


class UringEngine(Engine):
    name = "io_uring"

    def __init__(self, queue_depth: int = 64, flags: int = 0, submit_batch: int = 1):
        assert 1 <= queue_depth <= 4096, queue_depth
        assert submit_batch >= 1, submit_batch
        out = ffi.new("struct tierd_ring **")
        rc = lib.tierd_ring_open(queue_depth, flags, out)
        if rc < 0:
            raise OSError(-rc, f"io_uring ring open failed: {os.strerror(-rc)}")
        self._ring = out[0]
        # See tierd_ring_set_submit_batch in native/tierd_native.h.
        lib.tierd_ring_set_submit_batch(self._ring, submit_batch)
        self.submit_batch = submit_batch
        self.queue_depth = queue_depth
        self.fixed_buffers = False
        #: True when the kernel took the files as fixed files
        self.fixed_files = False
        self._nfiles = 0
        self._warned_buffers = False
        # One ring runs one batch at a time (it is not thread-safe in C).
        self._lock = threading.Lock()

    def _live_ring(self):
        if self._ring is None:
            raise ValueError("engine is closed")
        return self._ring

    def register_files(self, fds: Sequence[int]) -> None:
        fds = [int(fd) for fd in fds]
        assert all(fd >= 0 for fd in fds), f"negative fd in {fds}"
        arr = ffi.new("int[]", fds) if fds else ffi.NULL
        with self._lock:
            rc = lib.tierd_ring_register_files(self._live_ring(), arr, len(fds))
            if rc == -errno.ENOMEM and fds:
                # The copy itself failed: the ring now has no files at all.
                raise MemoryError("io_uring: out of memory registering files")
            self._nfiles = len(fds)
            self.fixed_files = rc == 0 and bool(fds)
        if rc < 0:
            log.debug("io_uring: fixed files refused (%s); using raw fds", _errname(-rc))

    def register_buffers(self, buffers: Sequence[tuple[int, int]]) -> bool:
        bufs = [(int(a), int(n)) for a, n in buffers]
        assert all(a > 0 and n > 0 for a, n in bufs), "buffers must be (addr > 0, len > 0)"
        iov = ffi.new("struct iovec[]", max(len(bufs), 1))
        for i, (a, n) in enumerate(bufs):
            iov[i].iov_base = ffi.cast("void *", a)
            iov[i].iov_len = n
        with self._lock:
            rc = lib.tierd_ring_register_buffers(self._live_ring(), iov, len(bufs))
        self.fixed_buffers = rc == 0 and bool(bufs)
        if rc < 0:
            if not self._warned_buffers:
                self._warned_buffers = True
                log.warning("io_uring: could not register %d buffers (%s: %s); using plain buffers",
                            len(bufs), _errname(-rc),
                            _memlock_note() if -rc == errno.ENOMEM else os.strerror(-rc))
            return False
        return True

    def submit(self, ops: np.ndarray) -> None:
        assert isinstance(ops, np.ndarray) and ops.dtype == OP_DTYPE, "ops must be an OP_DTYPE array"
        assert ops.ndim == 1 and ops.flags.c_contiguous and ops.flags.writeable, \
            "ops must be a writeable, C-contiguous 1-d array"
        n = ops.shape[0]
        if n == 0:
            return
        fi = ops["file_index"]
        # Cheap vectorized check; C would report -EBADF, but an out-of-range
        # index is a caller bug, not an I/O error.
        assert fi.min() >= 0 and fi.max() < self._nfiles, \
            f"file_index out of range [0, {self._nfiles}): {int(fi.min())}..{int(fi.max())}"
        with self._lock:
            rc = lib.tierd_ring_submit_wait(self._live_ring(),
                                            ffi.cast("struct tierd_op *", ops.ctypes.data), n)
        if rc < 0:
            raise OSError(-rc, f"io_uring ring failed: {os.strerror(-rc)}")

    def close(self) -> None:
        with self._lock:
            ring, self._ring = self._ring, None
            if ring is not None:
                lib.tierd_ring_close(ring)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
