"""Each completed op reports its own queue-to-completion latency (perf's clat)."""
from __future__ import annotations

import os
import time

import numpy as np

from tierd_daemon.dio import aligned_buffer
from tierd_daemon.engine import OP_READ, OP_WRITE, make_ops, raise_for_results


def test_lat_ns_is_per_op_and_bounded_by_the_batch(make_engine, tmp_path):
    path = tmp_path / "f"
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
    try:
        os.posix_fallocate(fd, 0, 64 * 65536)
        eng = make_engine(queue_depth=4)
        eng.register_files([fd])
        buf = aligned_buffer(64 * 65536)
        ops = make_ops(64)
        ops["addr"] = buf.ctypes.data + np.arange(64, dtype=np.uint64) * 65536
        ops["offset"] = np.arange(64, dtype=np.uint64) * 65536
        ops["len"] = 65536
        ops["opcode"] = OP_WRITE
        ops["lat_ns"] = 12345  # stale values must be overwritten
        t0 = time.monotonic_ns()
        eng.submit(ops)
        wall = time.monotonic_ns() - t0
        raise_for_results(ops)
        lat = ops["lat_ns"]
        assert (lat > 0).all() and (lat != 12345).all()
        assert (lat <= wall).all(), "an op cannot take longer than its whole batch"
        # 64 ops at depth 4 run in waves: the per-op latency is well below
        # the batch's wall time on average (it is not the batch time).
        assert lat.mean() < wall
        ops["opcode"] = OP_READ
        ops["len"][0] = 0     # settled without I/O: no latency
        eng.submit(ops)
        assert ops["lat_ns"][0] == 0 and (ops["lat_ns"][1:] > 0).all()
    finally:
        os.close(fd)
