"""Collection racing saves never deletes a chunk that a snapshot references."""
from __future__ import annotations

import threading
import time

import numpy as np

import tierd
from ckpt_writer import state_for


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def test_collect_racing_saves_keeps_every_referenced_chunk(daemon):
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("race", keep_last=100)   # every step stays: all are checked
        # Widen the window between the collector's reading of the manifests
        # and its deletes (a delay around the real call, nothing replaced):
        # saves that commit in between must keep their chunks.
        real = c.get_many
        collector_thread = []

        def slow_get_many(ns, keys):
            out = real(ns, keys)
            if threading.current_thread() in collector_thread:
                time.sleep(0.1)
            return out
        c.get_many = slow_get_many
        stop = threading.Event()
        errors: list[BaseException] = []

        def collector():
            while not stop.is_set():
                try:
                    ck.collect()
                except BaseException as e:   # reported below, not swallowed
                    errors.append(e)
                    return

        t = threading.Thread(target=collector)
        collector_thread.append(t)
        t.start()
        try:
            for step in range(1, 25):
                ck.save(step, state_for(step), lazy=step % 2 == 0).wait("persisted")
                ck.barrier()
                time.sleep(0.05)
        finally:
            stop.set()
            t.join()
        assert not errors, errors
        del c.get_many
        ck.close()
        ck = c.checkpoints("race", keep_last=100)
        assert ck.steps() == list(range(1, 25))
        for step in ck.steps():
            assert _same(ck.load(step), state_for(step)), step
