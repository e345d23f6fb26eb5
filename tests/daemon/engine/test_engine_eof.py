"""A read that reaches end of file stops there: result < len, not an error."""
import os

import numpy as np

from engine_helpers import random_buffer
from tierd_daemon.dio import aligned_buffer
from tierd_daemon.engine import OP_READ, make_ops


def test_short_read_at_eof(make_engine, open_file, tmp_path):
    data = random_buffer(10000, seed=5)
    with open(tmp_path / "short", "wb") as f:
        f.write(data.tobytes())
    eng = make_engine(4)
    eng.register_files([open_file("short", os.O_RDONLY)])  # buffered: any length
    dst = aligned_buffer(3 * 8192)
    ops = make_ops(3)
    ops["addr"] = dst.ctypes.data + np.arange(3, dtype=np.uint64) * 8192
    ops["offset"] = [0, 8192, 16384]
    ops["len"] = 8192
    ops["opcode"] = OP_READ
    eng.submit(ops)
    assert ops["result"].tolist() == [8192, 10000 - 8192, 0]
    assert np.array_equal(dst[:10000], data)


def test_short_read_at_eof_direct(make_engine, open_file, tmp_path):
    """O_DIRECT too: the tail past EOF is simply not returned."""
    data = random_buffer(3 * 4096, seed=6)
    with open(tmp_path / "d", "wb") as f:
        f.write(data.tobytes())
    eng = make_engine(4)
    eng.register_files([open_file("d", os.O_RDONLY | os.O_DIRECT)])
    dst = aligned_buffer(1 << 20)
    ops = make_ops(1)
    ops["addr"] = dst.ctypes.data
    ops["len"] = 1 << 20
    ops["opcode"] = OP_READ
    eng.submit(ops)
    assert ops["result"][0] == 3 * 4096
    assert np.array_equal(dst[:3 * 4096], data)
