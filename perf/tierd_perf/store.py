"""ioengine=store: put/get of bs-sized objects through tierd's object store.

The job's `filename` (or `directory`) is the store directory. Objects are
named `perf.<bs>.<thread>.<i>` for i in 0..size/bs-1, so a read job finds
the objects a preceding write job of the same bs put (as fio's read job
finds the file a write job left) and lays out only what is missing.

The store's ring has queue depth = iodepth, and each put_many/get_many call
moves a batch of up to BATCH_BYTES of objects: the engine keeps iodepth
requests in flight through the batch. Every object of a batch is charged the
batch's wall time ("clat (batch)"): the store reports no per-object timing.
A put batch is durable on return (data fdatasync + one catalog commit) in
the default namespace; that cost is part of what is measured.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from tierd_perf.common import Blocks, Clock, Directions, Progress, ThreadResult, object_batch
from tierd_perf.jobfile import Job

NS = "default"
BATCH_BYTES = 64 << 20   # objects per put_many/get_many (one durable commit per batch)
BATCH_OBJECTS = 1024


def batch_objects(bs: int, depth: int) -> int:
    return max(depth, min(BATCH_OBJECTS, BATCH_BYTES // max(bs, 1)))


def object_keys(job: Job, idx: int) -> list[bytes]:
    return [f"perf.{job.bs}.{idx}.{i}".encode() for i in range(max(1, job.size // job.bs))]


def capacity_for(jobs: list[Job]) -> int:
    """Data space for a set of store jobs sharing one directory: every
    thread's objects, twice over (an overwrite allocates before it frees),
    plus slack for page rounding."""
    need = max(sum(max(1, j.size // j.bs) * (-(-j.bs // 4096) * 4096) * j.numjobs for j in jobs), 1 << 20)
    return 2 * need + (64 << 20)


def open_store(path: str, capacity: int, queue_depth: int, engine_kind: str = "auto"):
    from tierd_daemon.store import Store, StoreConfig
    cfg = StoreConfig(capacity=capacity, engine=engine_kind, queue_depth=max(queue_depth, 1))
    return Store.open(path, cfg)


class _Slots:
    """One page-aligned buffer per object of a batch, reused batch after batch.

    Reads need one buffer per object (each is verified against its own
    checksum); writes may share content across objects.
    """

    def __init__(self, depth: int, bs: int, hugepages: bool = True) -> None:
        from tierd_daemon.dio import aligned_buffer
        stride = -(-bs // 4096) * 4096
        self.mem = aligned_buffer(depth * stride, hugepages=hugepages)
        self.views = [self.mem[i * stride:i * stride + bs] for i in range(depth)]


def layout(store, job: Job, nthreads: int | None = None) -> None:
    """Put every object a read job will get, unless it is there already."""
    depth = batch_objects(job.bs, max(job.iodepth, 1))
    slots = _Slots(depth, job.bs, job.hugepages)
    slots.mem[:] = np.random.default_rng(7).integers(0, 256, slots.mem.size, dtype=np.uint8)
    for idx in range(nthreads or job.numjobs):
        keys = object_keys(job, idx)
        missing = []
        for k in keys:
            if not (store.contains(NS, k) and store.stat(NS, k).size == job.bs):
                missing.append(k)
        for i in range(0, len(missing), depth):
            chunk = missing[i:i + depth]
            store.put_many(NS, list(zip(chunk, slots.views)))


def run_thread(job: Job, idx: int, store, progress: Progress, lock: threading.Lock | None = None
               ) -> ThreadResult:
    res = ThreadResult(engine_name="store", lat_kind="batch")
    bs = job.bs
    nb = batch_objects(bs, job.iodepth)
    keys = object_keys(job, idx)
    slots = _Slots(nb, bs, job.hugepages)
    # Register the buffers with the store's ring, as the daemon registers
    # its arena: I/O into them is then fixed-buffer I/O.
    store.register_memory(slots.mem)
    if job.does_write:
        slots.mem[:] = np.random.default_rng(idx).integers(0, 256, slots.mem.size, dtype=np.uint8)
    blocks = Blocks(len(keys), job.is_random, seed=idx + 1)
    dirs = Directions(job, seed=idx + 1)
    clock = Clock(job)
    measured = 0
    views = slots.views
    while (step := clock.next_batch(measured, nb, progress.stop)) is not None:
        measuring, n = step
        rd, wr = object_batch(blocks, dirs, keys, n)
        t0 = time.perf_counter_ns()
        if wr:
            store.put_many(NS, list(zip(wr, views)))
        if rd:
            sizes = store.get_many(NS, rd, out=views[:len(rd)])
            if any(sz != bs for sz in sizes):
                raise OSError(5, f"store get returned a short object (expected {bs} bytes)")
        dt = time.perf_counter_ns() - t0
        if not measuring:
            continue
        measured += res.record_batch(dt, len(rd), len(wr), bs)
        progress.done[idx] = measured
    res.runtime_ns = clock.runtime_ns(time.perf_counter_ns())
    return res
