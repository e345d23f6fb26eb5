"""What the workloads (native.py, store.py) share: per-thread results, offsets, the clock."""
from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np

from tierd_perf.jobfile import Job
from tierd_perf.stats import LatencyLog


@dataclasses.dataclass
class ThreadResult:
    read_bytes: int = 0
    write_bytes: int = 0
    read_lat: LatencyLog = dataclasses.field(default_factory=LatencyLog)
    write_lat: LatencyLog = dataclasses.field(default_factory=LatencyLog)
    runtime_ns: int = 0
    engine_name: str = ""
    error: BaseException | None = None
    # "op": each op's own completion latency (native engine); "batch": every
    # object of a store batch is charged the batch's wall time.
    lat_kind: str = "op"

    def record_batch(self, dt_ns: int, nread: int, nwrite: int, bs: int) -> int:
        """One object batch (store, daemon): every object is charged the
        batch's wall time. Returns the bytes it moved."""
        self.read_lat.record(dt_ns, nread)
        self.write_lat.record(dt_ns, nwrite)
        self.read_bytes += nread * bs
        self.write_bytes += nwrite * bs
        return (nread + nwrite) * bs


class Progress:
    """Bytes done per thread, read by the progress line (no locking needed:
    each thread writes only its own slot)."""

    def __init__(self, nthreads: int = 1) -> None:
        self.done = [0] * nthreads
        self.stop = threading.Event()

    def total(self) -> int:
        return sum(self.done)


class Blocks:
    """Block numbers for the next batch: sequential (wrapping) or uniform random.

    Random offsets are drawn uniformly with replacement (fio's norandommap);
    they are drawn in large chunks to keep per-batch Python work small.
    """

    CHUNK = 1 << 16

    def __init__(self, nblocks: int, random: bool, seed: int) -> None:
        self.nblocks = nblocks
        self.random = random
        self.rng = np.random.default_rng(seed)
        self.next = 0
        self._pool = np.zeros(0, dtype=np.int64)
        self._pos = 0

    def take(self, n: int) -> np.ndarray:
        if self.random:
            if self._pos + n > self._pool.size:
                self._pool = self.rng.integers(0, self.nblocks, max(self.CHUNK, n), dtype=np.int64)
                self._pos = 0
            out = self._pool[self._pos:self._pos + n]
            self._pos += n
            return out
        out = (self.next + np.arange(n, dtype=np.int64)) % self.nblocks
        self.next = int((self.next + n) % self.nblocks)
        return out


class Directions:
    """Which ops of a batch read (True) vs write, for mixed workloads."""

    def __init__(self, job: Job, seed: int) -> None:
        self.frac = job.read_fraction
        self.rng = np.random.default_rng(seed ^ 0x5EED)

    def take(self, n: int) -> np.ndarray | bool:
        if self.frac >= 1.0:
            return True
        if self.frac <= 0.0:
            return False
        return self.rng.random(n) < self.frac


class Clock:
    """Ramp and runtime bookkeeping for one thread.

    Without time_based a thread stops after `size` bytes of measured I/O (or at
    runtime, whichever comes first), as fio does; with time_based it runs until
    runtime. I/O during ramp_time is done but not counted.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.t0 = time.perf_counter_ns()
        self.ramp_end = self.t0 + int(job.ramp_time * 1e9)
        self.end = self.ramp_end + int(job.runtime * 1e9) if job.runtime else None
        self.measure_start: int | None = None if job.ramp_time else self.t0

    def measuring(self, now: int) -> bool:
        if self.measure_start is None and now >= self.ramp_end:
            self.measure_start = now
        return self.measure_start is not None

    def done(self, now: int, measured_bytes: int, stop: threading.Event) -> bool:
        if stop.is_set():
            return True
        if self.end is not None and now >= self.end:
            return True
        return not self.job.time_based and measured_bytes >= self.budget

    def next_batch(self, measured: int, limit: int, stop: threading.Event
                   ) -> tuple[bool, int] | None:
        """(measuring, ops in the next batch of at most `limit`), or None when done."""
        now = time.perf_counter_ns()
        measuring = self.measuring(now)
        if self.done(now, measured, stop):
            return None
        n = limit
        if measuring and not self.job.time_based:
            n = min(limit, (self.budget - measured) // self.job.bs)
        return measuring, n

    @property
    def budget(self) -> int:
        return (self.job.size // self.job.bs) * self.job.bs

    def runtime_ns(self, now: int) -> int:
        return now - self.measure_start if self.measure_start is not None else 0


def object_batch(blocks: Blocks, dirs: Directions, keys: list, n: int) -> tuple[list, list]:
    """The next batch of an object workload: (keys to read, keys to write).

    Each object appears at most once per batch (a batch cannot put one key
    twice), so a random batch may come out a little smaller than n.
    """
    which = list(dict.fromkeys(blocks.take(n).tolist()))
    is_read = dirs.take(len(which))
    if is_read is True:
        return [keys[b] for b in which], []
    if is_read is False:
        return [], [keys[b] for b in which]
    return ([keys[b] for b, r in zip(which, is_read) if r],
            [keys[b] for b, r in zip(which, is_read) if not r])
