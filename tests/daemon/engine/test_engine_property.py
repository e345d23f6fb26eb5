"""Random batches against an in-memory model of the file (hypothesis)."""
import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierd_daemon.dio import aligned_buffer
from tierd_daemon.engine import OP_READ, OP_WRITE, make_ops, open_engine, raise_for_results

BLOCK = 4096
FILE_BLOCKS = 64

# A batch: (is_write, first block, n blocks). Ops in one batch run in no
# particular order, so a batch is all reads or all non-overlapping writes.
_op = st.tuples(st.integers(0, FILE_BLOCKS - 1), st.integers(1, 16))
_batch = st.tuples(st.booleans(), st.lists(_op, min_size=1, max_size=40))


def _no_overlap(ops):
    taken, out = set(), []
    for blk, n in ops:
        span = set(range(blk, blk + n))
        if not span & taken:
            taken |= span
            out.append((blk, n))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(_batch, min_size=1, max_size=6), qd=st.sampled_from([1, 2, 8, 32]))
def test_random_batches_match_model(kind, tmp_path, batches, qd):
    path = tmp_path / "prop"
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT | os.O_CLOEXEC, 0o600)
    model = bytearray()
    rng = np.random.default_rng(len(batches))
    try:
        with open_engine(kind, qd) as eng:
            eng.register_files([fd])
            for is_write, spans in batches:
                if is_write:
                    spans = _no_overlap(spans)
                nbytes = sum(n for _, n in spans) * BLOCK
                buf = aligned_buffer(nbytes)
                if is_write:
                    buf[:] = rng.integers(0, 256, nbytes, dtype=np.uint8)
                ops = make_ops(len(spans))
                pos = 0
                for i, (blk, n) in enumerate(spans):
                    ops[i]["addr"] = buf.ctypes.data + pos
                    ops[i]["offset"] = blk * BLOCK
                    ops[i]["len"] = n * BLOCK
                    ops[i]["opcode"] = OP_WRITE if is_write else OP_READ
                    pos += n * BLOCK
                eng.submit(ops)
                pos = 0
                for i, (blk, n) in enumerate(spans):
                    lo, hi = blk * BLOCK, (blk + n) * BLOCK
                    got = bytes(buf[pos:pos + int(ops[i]["result"])])
                    if is_write:
                        assert ops[i]["result"] == n * BLOCK
                        if len(model) < hi:
                            model.extend(b"\0" * (hi - len(model)))
                        model[lo:hi] = got
                    else:
                        # Reads past EOF come up short, exactly at EOF.
                        assert ops[i]["result"] == max(0, min(hi, len(model)) - lo)
                        assert got == bytes(model[lo:hi])
                    pos += n * BLOCK
                if is_write:
                    raise_for_results(ops)
    finally:
        os.close(fd)
    assert os.path.getsize(path) == len(model)
