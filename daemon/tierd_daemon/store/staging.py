"""A bounded pool of page-aligned bounce buffers.

O_DIRECT wants aligned memory and whole pages. When a caller's buffer is not
aligned (or an object ends mid-page) the bytes pass through one of these
chunks. The pool is one mapping, registered with the engine once (fixed
buffers), and bounded: a caller that needs more chunks than are free waits,
which is the backpressure (invariant 6).
"""
from __future__ import annotations

import threading

import numpy as np

from tierd_daemon.dio import aligned_buffer


class StagingPool:
    def __init__(self, total_bytes: int, chunk_bytes: int) -> None:
        assert chunk_bytes > 0 and total_bytes >= chunk_bytes
        self.chunk_bytes = chunk_bytes
        self.nchunks = total_bytes // chunk_bytes
        self.memory = aligned_buffer(self.nchunks * chunk_bytes)
        self._free = list(range(self.nchunks))
        self._cond = threading.Condition()

    @property
    def region(self) -> tuple[int, int]:
        """(address, length) of the whole pool, for engine.register_buffers."""
        return int(self.memory.ctypes.data), int(self.memory.nbytes)

    def chunk(self, index: int) -> np.ndarray:
        start = index * self.chunk_bytes
        return self.memory[start:start + self.chunk_bytes]

    def acquire(self, n: int) -> list[int]:
        """n chunk indices, waiting until that many are free (n <= nchunks)."""
        assert 0 < n <= self.nchunks, f"asked for {n} of {self.nchunks} staging chunks"
        with self._cond:
            while len(self._free) < n:
                self._cond.wait()
            taken, self._free = self._free[:n], self._free[n:]
            return taken

    def release(self, chunks: list[int]) -> None:
        with self._cond:
            assert not set(chunks) & set(self._free), "staging chunk released twice"
            self._free.extend(chunks)
            self._cond.notify_all()
