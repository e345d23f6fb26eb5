"""A failing op reports -errno in its result; the batch and engine carry on."""
import errno
import os

import numpy as np
import pytest

from engine_helpers import random_buffer
from tierd_daemon.dio import aligned_buffer
from tierd_daemon.engine import OP_READ, OP_WRITE, make_ops, raise_for_results


def test_read_on_write_only_fd_gives_ebadf(make_engine, open_file):
    eng = make_engine(4)
    good = open_file("good")
    wo = open_file("wo", os.O_WRONLY | os.O_CREAT)
    eng.register_files([good, wo])
    buf = random_buffer(4096)
    ops = make_ops(2)
    ops["addr"] = buf.ctypes.data
    ops["len"] = 4096
    ops["opcode"] = [OP_WRITE, OP_READ]
    ops["file_index"] = [0, 1]
    eng.submit(ops)
    assert ops["result"].tolist() == [4096, -errno.EBADF]
    with pytest.raises(OSError) as ei:
        raise_for_results(ops)
    assert ei.value.errno == errno.EBADF


def test_misaligned_direct_offset_gives_einval(make_engine, open_file):
    eng = make_engine(4)
    eng.register_files([open_file()])
    buf = random_buffer(8192)
    ops = make_ops(3)
    ops["addr"] = buf.ctypes.data
    ops["len"] = 4096
    ops["opcode"] = OP_WRITE
    ops["offset"] = [0, 100, 4096]
    eng.submit(ops)
    assert ops["result"].tolist() == [4096, -errno.EINVAL, 4096]


def test_misaligned_direct_buffer_gives_einval(make_engine, open_file):
    eng = make_engine(4)
    eng.register_files([open_file()])
    buf = aligned_buffer(8192)
    ops = make_ops(1)
    ops["addr"] = buf.ctypes.data + 1
    ops["len"] = 4096
    ops["opcode"] = OP_WRITE
    eng.submit(ops)
    assert ops["result"][0] == -errno.EINVAL


def test_file_index_out_of_range_is_a_caller_bug(make_engine, open_file):
    eng = make_engine(4)
    eng.register_files([open_file()])
    ops = make_ops(1)
    ops["file_index"] = 1
    with pytest.raises(AssertionError):
        eng.submit(ops)


def test_wrong_dtype_rejected(make_engine):
    eng = make_engine(4)
    with pytest.raises(AssertionError):
        eng.submit(np.zeros(4, dtype=np.uint64))
