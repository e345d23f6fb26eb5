"""Staggered (submit_batch=1) and batched submission move the same bytes."""
from __future__ import annotations

import os

import numpy as np
import pytest

from tierd_daemon.dio import aligned_buffer
from tierd_daemon.engine import OP_READ, OP_WRITE, make_ops, open_engine, raise_for_results


@pytest.mark.parametrize("submit_batch", [1, 3, 64])
def test_submit_batch_round_trip(need_uring, tmp_path, submit_batch):
    fd = os.open(tmp_path / "f", os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
    try:
        n, bs = 100, 8192
        src = aligned_buffer(n * bs)
        src[:] = np.random.default_rng(submit_batch).integers(0, 256, src.size, dtype=np.uint8)
        with open_engine("io_uring", queue_depth=16, submit_batch=submit_batch) as eng:
            assert eng.submit_batch == submit_batch
            eng.register_files([fd])
            ops = make_ops(n)
            ops["addr"] = src.ctypes.data + np.arange(n, dtype=np.uint64) * bs
            ops["offset"] = np.arange(n, dtype=np.uint64)[::-1] * bs
            ops["len"] = bs
            ops["opcode"] = OP_WRITE
            eng.submit(ops)
            raise_for_results(ops)
            dst = aligned_buffer(n * bs)
            ops["addr"] = dst.ctypes.data + np.arange(n, dtype=np.uint64) * bs
            ops["opcode"] = OP_READ
            eng.submit(ops)
            raise_for_results(ops)
        assert np.array_equal(dst, src)
    finally:
        os.close(fd)
