"""Child for the daemon-crash tests: puts objects and reports what was acknowledged.

Usage: daemon_writer.py SOCKET SEED
Prints `B ns key seed size durability` before each put and `A ns key` after
the daemon acknowledged it. Runs until killed or the daemon goes away.
"""
from __future__ import annotations

import sys

import numpy as np

from rawwire import DataConn


def content(seed: int, size: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def main(path: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = DataConn(path)
    print("READY", flush=True)
    while True:
        ns, dur = ("default", "persisted") if rng.random() < 0.7 else ("cache", "staged")
        key = f"k{rng.integers(30)}"
        s = int(rng.integers(2**31))
        size = int(rng.choice([0, 1, 4096, int(rng.integers(1, 300_000)), 2 << 20]))
        print(f"B {ns} {key} {s} {size} {dur}", flush=True)
        rep = c.put(ns, key.encode(), content(s, size), dur)
        if not rep["ok"]:
            print(f"E {ns} {key} {rep['error']['code']}", flush=True)
            continue
        print(f"A {ns} {key}", flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1], int(sys.argv[2]))
    except (ConnectionError, OSError, AssertionError):
        pass   # the daemon was killed under us: that is the test
