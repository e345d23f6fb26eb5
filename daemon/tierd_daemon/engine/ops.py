"""The batch format shared by every I/O engine.

A batch is a numpy structured array of OP_DTYPE. Its memory layout is exactly
`struct tierd_op` in native/tierd_native.h, so the io_uring engine hands the
array to C without a copy. Callers fill addr/offset/len/file_index/opcode;
the engine fills `result` with the bytes transferred (== len on success) or a
negative errno, and `lat_ns` with the op's completion latency. A short read
at end of file leaves result < len.
"""
from __future__ import annotations

import os

import numpy as np

OP_READ = 0
OP_WRITE = 1
OP_FSYNC = 2  # fdatasync(file_index); addr/offset/len ignored

# Must match struct tierd_op (native/tierd_native.h) field for field.
OP_DTYPE = np.dtype(
    [
        ("addr", "<u8"),        # buffer address (aligned for O_DIRECT)
        ("offset", "<u8"),      # byte offset in the file
        ("len", "<u4"),         # bytes to transfer
        ("file_index", "<i4"),  # index into the engine's registered files
        ("opcode", "u1"),       # OP_READ / OP_WRITE / OP_FSYNC
        ("_pad", "u1", (7,)),
        ("result", "<i8"),      # out: bytes done, or -errno
        ("lat_ns", "<u8"),      # out: queue-to-completion time of the op
    ]
)
assert OP_DTYPE.itemsize == 48

# One op never moves more than this; larger transfers are split by callers so
# that a batch spreads over the queue depth (and len fits in u32).
MAX_OP_BYTES = 1 << 30


def make_ops(n: int) -> np.ndarray:
    """A zeroed batch of n ops."""
    assert n >= 0
    return np.zeros(n, dtype=OP_DTYPE)


def raise_for_results(ops: np.ndarray, what: str = "I/O") -> None:
    """Raise OSError for the first op that failed or came up short."""
    res = ops["result"]
    lens = ops["len"].astype(np.int64)
    is_sync = ops["opcode"] == OP_FSYNC
    bad = np.nonzero(np.where(is_sync, res != 0, res != lens))[0]
    if bad.size == 0:
        return
    i = int(bad[0])
    r = int(res[i])
    if r < 0:
        err = -r
        raise OSError(err, f"{what} failed: {os.strerror(err)} (op {i}: file {int(ops['file_index'][i])} "
                           f"offset {int(ops['offset'][i])} len {int(ops['len'][i])})")
    raise OSError(5, f"{what} came up short: {r} of {int(ops['len'][i])} bytes "
                     f"(op {i}: file {int(ops['file_index'][i])} offset {int(ops['offset'][i])}); "
                     "the file is shorter than the catalog says")
