"""Helpers shared by the engine tests (a uniquely named module, not conftest,
so that importing it cannot pick up another directory's conftest)."""
import numpy as np

from tierd_daemon.dio import aligned_buffer


def random_buffer(nbytes: int, seed: int = 0) -> np.ndarray:
    buf = aligned_buffer(nbytes)
    buf[:] = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)
    return buf
