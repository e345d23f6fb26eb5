"""Checkpoint manager arguments: bad ones are refused with what to use instead."""
from __future__ import annotations

import numpy as np
import pytest

import tierd


@pytest.mark.parametrize("kw, match", [
    ({"run": "bad name!"}, "letters, digits"),
    ({"keep_last": 0}, "keep_last must be >= 1"),
    ({"chunk_bytes": 5000}, "chunk_bytes must be 1 MiB..256 MiB"),
    ({"copy_threads": 0}, "copy_threads must be an int >= 1"),
    ({"copy_threads": 2.5}, "copy_threads must be an int >= 1"),
])
def test_bad_arguments_are_refused(daemon, kw, match):
    with tierd.connect(daemon.socket) as c:
        args = dict({"run": "r"}, **kw)
        with pytest.raises(tierd.InvalidArgument, match=match):
            c.checkpoints(args.pop("run"), **args)


def test_one_copy_thread_is_enough(daemon):
    with tierd.connect(daemon.socket) as c:
        with c.checkpoints("one", copy_threads=1) as ck:
            w = np.arange(3 << 20, dtype=np.float32)
            ck.save(1, {"w": w}).wait("persisted")
            assert np.array_equal(ck.load()["w"], w)
