"""Write then read back with O_DIRECT, at sizes 4 KiB..8 MiB and batches larger
than the queue depth, on both engines."""
import numpy as np
import pytest

from engine_helpers import random_buffer
from tierd_daemon.dio import aligned_buffer
from tierd_daemon.engine import OP_READ, OP_WRITE, make_ops, raise_for_results


def _batch(opcode, buf, size, n, base=0):
    ops = make_ops(n)
    ops["addr"] = buf.ctypes.data + np.arange(n, dtype=np.uint64) * size
    ops["offset"] = base + np.arange(n, dtype=np.uint64) * size
    ops["len"] = size
    ops["opcode"] = opcode
    return ops


@pytest.mark.parametrize("size", [4096, 64 << 10, 1 << 20, 8 << 20])
def test_roundtrip_sizes(make_engine, open_file, size):
    qd = 4
    eng = make_engine(qd)
    fd = open_file()
    eng.register_files([fd])
    n = 2 * qd + 3  # more ops than the queue holds
    src = random_buffer(size * n, seed=size)
    w = _batch(OP_WRITE, src, size, n)
    eng.submit(w)
    raise_for_results(w)
    assert (w["result"] == size).all()

    dst = aligned_buffer(size * n)
    r = _batch(OP_READ, dst, size, n)
    eng.submit(r)
    raise_for_results(r)
    assert (r["result"] == size).all()
    assert np.array_equal(src, dst)


def test_many_small_ops(make_engine, open_file):
    eng = make_engine(8)
    fd = open_file()
    eng.register_files([fd])
    n, size = 2000, 4096
    src = random_buffer(size * n, seed=1)
    w = _batch(OP_WRITE, src, size, n)
    eng.submit(w)
    raise_for_results(w)
    dst = aligned_buffer(size * n)
    # Read in reverse order into shuffled slots: results must follow each op.
    perm = np.random.default_rng(2).permutation(n)
    r = make_ops(n)
    r["addr"] = dst.ctypes.data + perm.astype(np.uint64) * size
    r["offset"] = perm.astype(np.uint64) * size
    r["len"] = size
    r["opcode"] = OP_READ
    eng.submit(r)
    raise_for_results(r)
    assert np.array_equal(src, dst)


def test_empty_batch_and_zero_len(make_engine, open_file):
    eng = make_engine(4)
    eng.register_files([open_file()])
    eng.submit(make_ops(0))
    ops = make_ops(3)
    ops["opcode"] = OP_READ
    ops["result"] = 99
    eng.submit(ops)  # len 0: nothing to do, result 0
    assert (ops["result"] == 0).all()


def test_several_files(make_engine, open_file):
    eng = make_engine(4)
    fds = [open_file(f"f{i}") for i in range(3)]
    eng.register_files(fds)
    size = 8192
    src = random_buffer(size * 3, seed=3)
    w = _batch(OP_WRITE, src, size, 3, base=0)
    w["offset"] = 0
    w["file_index"] = [0, 1, 2]
    eng.submit(w)
    raise_for_results(w)
    # Re-registering replaces the set: read file 2 as index 0.
    eng.register_files([fds[2]])
    dst = aligned_buffer(size)
    r = _batch(OP_READ, dst, size, 1)
    eng.submit(r)
    raise_for_results(r)
    assert np.array_equal(dst, src[2 * size:])
