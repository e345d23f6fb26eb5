"""Child for the checkpoint crash tests: saves steps 1, 2, ... of a state
derived from the step, printing `P <step>` once a step is persisted.

Usage: ckpt_writer.py SOCKET RUN FIRST_STEP [lazy]
"""
from __future__ import annotations

import sys

import numpy as np

import tierd

MiB = 1 << 20


def state_for(step: int) -> dict:
    rng = np.random.default_rng(step)
    return {
        "model": {"w": rng.standard_normal(MiB // 4, dtype=np.float32),          # changes
                  "frozen": np.arange(2 * MiB // 4, dtype=np.float32)},          # never changes
        "opt": {"m": rng.standard_normal((512, 512)).astype(np.float32), "step": step},
        "tiny": [np.full(3, step, np.int64) for _ in range(50)],
    }


def main(sock: str, run: str, first: int, lazy: bool) -> None:
    c = tierd.connect(sock, reconnect=False)
    ck = c.checkpoints(run, keep_last=2)
    print("READY", flush=True)
    step = first
    while True:
        h = ck.save(step, state_for(step), lazy=lazy)
        print(f"S {step}", flush=True)
        h.wait("persisted")
        print(f"P {step}", flush=True)
        step += 1


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]), len(sys.argv) > 4)
    except (tierd.TierdError, OSError):
        pass   # the daemon was killed under us: that is the test
