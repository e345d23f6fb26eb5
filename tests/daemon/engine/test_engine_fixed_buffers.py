"""Registered (fixed) buffers and plain buffers move the same bytes."""
import numpy as np

from engine_helpers import random_buffer
from tierd_daemon.dio import aligned_buffer
from tierd_daemon.engine import OP_READ, OP_WRITE, make_ops, raise_for_results


def _io(eng, opcode, buf, n, size):
    ops = make_ops(n)
    ops["addr"] = buf.ctypes.data + np.arange(n, dtype=np.uint64) * size
    ops["offset"] = np.arange(n, dtype=np.uint64) * size
    ops["len"] = size
    ops["opcode"] = opcode
    eng.submit(ops)
    raise_for_results(ops)


def test_fixed_vs_plain_same_bytes(make_engine, open_file, kind):
    n, size = 64, 64 << 10
    src = random_buffer(n * size, seed=7)
    fixed_dst = aligned_buffer(n * size)
    plain_dst = aligned_buffer(n * size)

    eng = make_engine(8)
    eng.register_files([open_file()])
    ok = eng.register_buffers([(src.ctypes.data, src.nbytes), (fixed_dst.ctypes.data, fixed_dst.nbytes)])
    # Root (CAP_IPC_LOCK) can pin them; the thread pool never does.
    assert ok is (kind == "io_uring")
    assert eng.fixed_buffers is ok
    _io(eng, OP_WRITE, src, n, size)
    _io(eng, OP_READ, fixed_dst, n, size)   # inside a registered buffer
    _io(eng, OP_READ, plain_dst, n, size)   # not registered: plain path
    assert np.array_equal(src, fixed_dst)
    assert np.array_equal(src, plain_dst)


def test_op_straddling_registered_buffer(make_engine, open_file):
    """An op only partly inside a registered region must use a plain buffer."""
    size = 16384
    buf = random_buffer(2 * size, seed=8)
    eng = make_engine(4)
    eng.register_files([open_file()])
    eng.register_buffers([(buf.ctypes.data, size)])  # first half only
    _io(eng, OP_WRITE, buf, 1, 2 * size)
    dst = aligned_buffer(2 * size)
    eng.register_buffers([(dst.ctypes.data, size)])  # replaces the set
    _io(eng, OP_READ, dst, 1, 2 * size)
    assert np.array_equal(buf, dst)
    eng.register_buffers([])  # clearing is allowed
    assert not eng.fixed_buffers
