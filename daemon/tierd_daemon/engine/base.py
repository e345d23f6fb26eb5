"""The engine contract: what the store and perf runner rely on.

An engine moves bytes between memory and registered files, a whole batch per
call. Two backends implement it (one table, chosen at start-up, as fio does):
`io_uring` (native/, liburing via cffi) and `threadpool` (pread/pwrite on a
thread pool, the fallback where io_uring is unavailable).
"""
from __future__ import annotations

import abc
from typing import Sequence

import numpy as np


class Engine(abc.ABC):
    #: "io_uring" or "threadpool"
    name: str
    queue_depth: int
    #: True once register_buffers succeeded (fixed-buffer ops in use)
    fixed_buffers: bool = False

    @abc.abstractmethod
    def register_files(self, fds: Sequence[int]) -> None:
        """Make fds addressable as file_index 0..n-1 (replaces any earlier set).

        If the kernel refuses fixed files the engine keeps raw fds; callers
        see no difference.
        """

    @abc.abstractmethod
    def register_buffers(self, buffers: Sequence[tuple[int, int]]) -> bool:
        """Register (addr, len) regions for fixed-buffer I/O.

        Returns False (and logs once why) when registration fails, e.g. by
        RLIMIT_MEMLOCK; I/O then carries on with plain buffers. Ops whose
        buffer lies inside a registered region use it automatically.
        """

    @abc.abstractmethod
    def submit(self, ops: np.ndarray) -> None:
        """Run every op of the batch (OP_DTYPE array) to completion.

        Releases the GIL while waiting. Short transfers are resubmitted and
        EAGAIN/EINTR retried inside; per-op outcomes land in ops["result"].
        Raises OSError only for a failure of the engine itself, never for a
        single op's error (see ops.raise_for_results).
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the ring/threads. Idempotent."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
