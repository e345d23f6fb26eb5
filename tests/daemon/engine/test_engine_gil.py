"""submit() releases the GIL while the ring waits (cffi API mode default)."""
import os
import threading

from tierd_daemon.dio import aligned_buffer
from tierd_daemon.engine import OP_READ, make_ops, open_engine


def test_submit_releases_gil(need_uring):
    # A read on an empty pipe blocks in the kernel until we write to it; we
    # can only write if the submitting thread let go of the GIL.
    rfd, wfd = os.pipe()
    buf = aligned_buffer(4096)
    ops = make_ops(1)
    ops["addr"] = buf.ctypes.data
    ops["len"] = 5
    ops["opcode"] = OP_READ
    try:
        with open_engine("io_uring", 4) as eng:
            eng.register_files([rfd])
            t = threading.Thread(target=eng.submit, args=(ops,), daemon=True)
            t.start()
            t.join(0.2)
            assert t.is_alive()          # blocked in C, yet we are running
            os.write(wfd, b"hello")
            t.join(10)
            assert not t.is_alive()
        assert ops["result"][0] == 5 and bytes(buf[:5]) == b"hello"
    finally:
        os.close(rfd)
        os.close(wfd)
