"""OP_FSYNC (fdatasync of file_index) returns 0."""
from engine_helpers import random_buffer
from tierd_daemon.engine import OP_FSYNC, OP_WRITE, make_ops, raise_for_results


def test_fsync_returns_zero(make_engine, open_file):
    eng = make_engine(4)
    eng.register_files([open_file("a"), open_file("b")])
    buf = random_buffer(4096)
    w = make_ops(2)
    w["addr"] = buf.ctypes.data
    w["len"] = 4096
    w["opcode"] = OP_WRITE
    w["file_index"] = [0, 1]
    eng.submit(w)
    raise_for_results(w)
    s = make_ops(2)
    s["opcode"] = OP_FSYNC
    s["file_index"] = [0, 1]
    s["result"] = 123
    eng.submit(s)
    assert s["result"].tolist() == [0, 0]
    raise_for_results(s)
