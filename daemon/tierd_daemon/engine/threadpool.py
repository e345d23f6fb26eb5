"""The fallback engine: pread/pwrite/fdatasync on a bounded thread pool.

Same semantics as the io_uring engine (see base.Engine): per-op results in
ops["result"], short transfers continued, EINTR/EAGAIN retried. os.preadv and
os.pwritev release the GIL, so up to queue_depth transfers run at once.
"""
from __future__ import annotations

import ctypes
import errno
import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from .base import Engine
from .ops import OP_DTYPE, OP_FSYNC, OP_READ, OP_WRITE

MAX_THREADS = 64
MAX_RETRIES = 1000  # per op, as in the C engine


def _run_op(fd: int, opcode: int, addr: int, offset: int, length: int) -> int:
    """Run one op to completion; returns bytes done or -errno."""
    retries = 0
    if opcode == OP_FSYNC:
        while True:
            try:
                os.fdatasync(fd)
                return 0
            except (BlockingIOError, InterruptedError) as e:
                retries += 1
                if retries > MAX_RETRIES:
                    return -e.errno
            except OSError as e:
                return -e.errno
    if opcode not in (OP_READ, OP_WRITE):
        return -errno.EINVAL
    done = 0
    while done < length:
        # A view straight onto the caller's memory: no copy, GIL released.
        mv = memoryview((ctypes.c_char * (length - done)).from_address(addr + done)).cast("B")
        try:
            if opcode == OP_READ:
                got = os.preadv(fd, [mv], offset + done)
            else:
                got = os.pwritev(fd, [mv], offset + done)
        except (BlockingIOError, InterruptedError) as e:
            retries += 1
            if retries > MAX_RETRIES:
                return -e.errno
            time.sleep(0)
            continue
        except OSError as e:
            return -e.errno
        if got == 0:  # EOF (or a device that took nothing): report what we have
            break
        done += got
    return done


class ThreadPoolEngine(Engine):
    name = "threadpool"

    def __init__(self, queue_depth: int = 64):
        assert queue_depth >= 1, queue_depth
        self.queue_depth = queue_depth
        self.fixed_buffers = False
        self._workers = min(queue_depth, MAX_THREADS)
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=self._workers, thread_name_prefix="tierd-io")
        self._fds: list[int] = []
        self._lock = threading.Lock()  # one batch at a time, like a ring

    def register_files(self, fds: Sequence[int]) -> None:
        fds = [int(fd) for fd in fds]
        assert all(fd >= 0 for fd in fds), f"negative fd in {fds}"
        with self._lock:
            self._fds = fds

    def register_buffers(self, buffers: Sequence[tuple[int, int]]) -> bool:
        # Nothing to pin for pread/pwrite; False says "no fixed buffers".
        return False

    def submit(self, ops: np.ndarray) -> None:
        assert isinstance(ops, np.ndarray) and ops.dtype == OP_DTYPE, "ops must be an OP_DTYPE array"
        assert ops.ndim == 1 and ops.flags.writeable, "ops must be a writeable 1-d array"
        n = ops.shape[0]
        if n == 0:
            return
        with self._lock:
            if self._pool is None:
                raise ValueError("engine is closed")
            fds = self._fds
            fi = ops["file_index"]
            assert fi.min() >= 0 and fi.max() < len(fds), \
                f"file_index out of range [0, {len(fds)}): {int(fi.min())}..{int(fi.max())}"
            # Pull the columns into Python lists once: per-op numpy scalar
            # access would cost more than the syscall for small ops.
            addrs = ops["addr"].tolist()
            offs = ops["offset"].tolist()
            lens = ops["len"].tolist()
            fidx = fi.tolist()
            codes = ops["opcode"].tolist()
            results = [0] * n
            lats = [0] * n
            counter = itertools.count()  # next() is atomic under the GIL
            clock = time.monotonic_ns

            def worker() -> None:
                for i in counter:
                    if i >= n:
                        return
                    if lens[i] == 0 and codes[i] != OP_FSYNC:
                        continue  # settled without I/O, as in the io_uring engine
                    t0 = clock()
                    results[i] = _run_op(fds[fidx[i]], codes[i], addrs[i], offs[i], lens[i])
                    lats[i] = clock() - t0

            # A few long-lived tasks pulling indices instead of one future per
            # op: keeps queue_depth ops in flight with little overhead.
            futs = [self._pool.submit(worker) for _ in range(min(self._workers, n))]
            for f in futs:
                f.result()
            ops["result"] = results
            ops["lat_ns"] = lats

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
