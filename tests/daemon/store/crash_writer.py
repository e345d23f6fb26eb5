"""Writer for the crash test (run as a subprocess, SIGKILLed at random).

Prints `B <op> <key> <seed> <size>` before an operation and `A <op> <key>`
after it returned, flushed each time: the parent knows exactly what was
acknowledged and what may have been in flight when the kill came.
"""
from __future__ import annotations

import sys

import numpy as np

from tierd_daemon.store import Store, StoreConfig

MiB = 1 << 20


def content(seed: int, size: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def main(path: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    store = Store.open(path, StoreConfig(capacity=96 * MiB, staging_bytes=2 * MiB))
    print("READY", flush=True)
    while True:
        r = rng.random()
        if r < 0.15:
            key = f"k{rng.integers(40)}"
            print(f"B del {key} 0 0", flush=True)
            store.delete_many("default", [key])
            print(f"A del {key}", flush=True)
            continue
        n = 1 if r < 0.85 else int(rng.integers(2, 5))
        keys = list(dict.fromkeys(f"k{rng.integers(40)}" for _ in range(n)))
        items = []
        for key in keys:
            s = int(rng.integers(2**31))
            size = int(rng.choice([0, 1, 4096, int(rng.integers(1, 600_000)), 3 * MiB + 5]))
            items.append((key, s, size))
            print(f"B put {key} {s} {size}", flush=True)
        store.put_many("default", [(k, content(s, z)) for k, s, z in items])
        for key, _, _ in items:
            print(f"A put {key}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
