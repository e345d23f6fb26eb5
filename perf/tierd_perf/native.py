"""ioengine=native: tierd's I/O engine (io_uring, or the threadpool fallback)
driving a plain file, the way fio's io_uring engine would.

The ring is opened with queue depth = iodepth, and each engine.submit()
hands it a long batch (up to BATCH_BYTES / BATCH_OPS ops): the C loop
refills the ring as each op completes, so exactly `iodepth` ops stay in
flight, as with fio; the queue drains only at the end of a batch. Latency
is each op's own queue-to-completion time, measured by the engine (clat).
"""
from __future__ import annotations

import os
import time

import numpy as np

from tierd_perf.common import Blocks, Clock, Directions, Progress, ThreadResult
from tierd_perf.jobfile import Job

LAYOUT_CHUNK = 1 << 20
LAYOUT_DEPTH = 16
BATCH_BYTES = 256 << 20   # ops per submit: enough waves that the end-of-batch
BATCH_OPS = 4096          # drain is a few percent, few enough to stop on time


def batch_ops(bs: int, depth: int) -> int:
    return max(depth, min(BATCH_OPS, BATCH_BYTES // bs))


def _open(path: str, direct: bool) -> int:
    flags = os.O_RDWR | os.O_CREAT | (os.O_DIRECT if direct else 0)
    try:
        return os.open(path, flags, 0o644)
    except OSError as e:
        if direct and e.errno == 22:  # EINVAL: the filesystem has no O_DIRECT
            raise OSError(e.errno, f"{path}: O_DIRECT is not supported here (set direct=0)") from None
        raise


def _engine_mod():
    from tierd_daemon import engine as eng_mod
    from tierd_daemon.engine import ops as ops_mod
    from tierd_daemon.dio import aligned_buffer
    return eng_mod, ops_mod, aligned_buffer


def layout(job: Job, path: str, engine_kind: str = "auto") -> None:
    """Make `path` at least job.size bytes, as fio lays out a job's file.

    Read jobs need real data: a missing or short file is written in full
    (1 MiB writes through our engine, O_DIRECT). Write-only jobs just get
    the space allocated.
    """
    size = (job.size // job.bs) * job.bs
    try:
        have = os.stat(path).st_size
    except FileNotFoundError:
        have = -1
    if have >= size:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not job.does_read:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
        return
    eng_mod, ops_mod, aligned_buffer = _engine_mod()
    fd = _open(path, direct=True)
    try:
        os.ftruncate(fd, 0)
        with eng_mod.open_engine(kind=engine_kind, queue_depth=LAYOUT_DEPTH) as eng:
            eng.register_files([fd])
            buf = aligned_buffer(LAYOUT_CHUNK * LAYOUT_DEPTH)
            buf[:] = np.random.default_rng(1).integers(0, 256, buf.size, dtype=np.uint8)
            eng.register_buffers([(buf.ctypes.data, buf.nbytes)])
            ops = ops_mod.make_ops(LAYOUT_DEPTH)
            ops["addr"] = buf.ctypes.data + np.arange(LAYOUT_DEPTH, dtype=np.uint64) * LAYOUT_CHUNK
            ops["opcode"] = ops_mod.OP_WRITE
            # round the file up to whole chunks: O_DIRECT wants aligned lengths
            padded = -(-size // 4096) * 4096
            off = 0
            while off < padded:
                n = 0
                while n < LAYOUT_DEPTH and off < padded:
                    ln = min(LAYOUT_CHUNK, padded - off)
                    ops["offset"][n] = off
                    ops["len"][n] = ln
                    off += ln
                    n += 1
                eng.submit(ops[:n])
                ops_mod.raise_for_results(ops[:n], f"laying out {path}")
    finally:
        os.close(fd)


def run_thread(job: Job, idx: int, path: str, progress: Progress,
               engine_kind: str = "auto") -> ThreadResult:
    """One fio "job thread": iodepth-op batches of bs bytes on `path`."""
    eng_mod, ops_mod, aligned_buffer = _engine_mod()
    res = ThreadResult()
    bs, depth = job.bs, job.iodepth
    nblocks = max(1, job.size // bs)
    fd = _open(path, job.direct)
    try:
        with eng_mod.open_engine(kind=engine_kind, queue_depth=depth,
                                 submit_batch=job.iodepth_batch_submit) as eng:
            res.engine_name = eng.name
            eng.register_files([fd])
            # One buffer per in-flight slot; op i uses slot i % depth. Two ops
            # sharing a slot may overlap in time (completions come out of
            # order): harmless, the bytes are never looked at.
            buf = aligned_buffer(depth * bs, hugepages=job.hugepages)
            if job.does_write:  # incompressible payload, like fio's default buffers
                buf[:] = np.random.default_rng(idx).integers(0, 256, buf.size, dtype=np.uint8)
            eng.register_buffers([(buf.ctypes.data, buf.nbytes)])
            nb = batch_ops(bs, depth)
            ops = ops_mod.make_ops(nb)
            ops["addr"] = buf.ctypes.data + (np.arange(nb, dtype=np.uint64) % depth) * bs
            ops["len"] = bs
            ops["file_index"] = 0
            blocks = Blocks(nblocks, job.is_random, seed=idx + 1)
            dirs = Directions(job, seed=idx + 1)
            clock = Clock(job)
            measured = 0
            offsets = ops["offset"]
            opcodes = ops["opcode"]
            results = ops["result"]
            lats = ops["lat_ns"]
            while (step := clock.next_batch(measured, nb, progress.stop)) is not None:
                measuring, n = step
                now = time.perf_counter_ns()
                if clock.end is not None:
                    # Don't overshoot runtime by more than ~1/8 s of I/O.
                    n = max(depth, min(n, int(_recent_rate(res, clock, now) / 8) // bs or n))
                offsets[:n] = blocks.take(n) * bs
                is_read = dirs.take(n)
                opcodes[:n] = np.where(is_read, ops_mod.OP_READ, ops_mod.OP_WRITE)
                batch = ops[:n]
                eng.submit(batch)
                if (results[:n] != bs).any():
                    ops_mod.raise_for_results(batch, f"{job.name} on {path}")
                if not measuring:
                    continue
                if is_read is True:
                    res.read_lat.record_each(lats[:n])
                    nr = n
                elif is_read is False:
                    res.write_lat.record_each(lats[:n])
                    nr = 0
                else:
                    res.read_lat.record_each(lats[:n][is_read])
                    res.write_lat.record_each(lats[:n][~is_read])
                    nr = int(np.count_nonzero(is_read))
                res.read_bytes += nr * bs
                res.write_bytes += (n - nr) * bs
                measured += n * bs
                progress.done[idx] = measured
            res.runtime_ns = clock.runtime_ns(time.perf_counter_ns())
    finally:
        os.close(fd)
    return res


def _recent_rate(res: ThreadResult, clock: Clock, now: int) -> float:
    """Bytes/s measured so far (0 before the first batch)."""
    if clock.measure_start is None or now <= clock.measure_start:
        return 0.0
    return (res.read_bytes + res.write_bytes) / ((now - clock.measure_start) / 1e9)
