"""A put acknowledged as "persisted" survives SIGKILL of the daemon."""
import numpy as np

import tierd


def test_persisted_survives_sigkill(daemon):
    rng = np.random.default_rng(7)
    objs = {f"ckpt/{i}": rng.integers(0, 256, n, dtype=np.uint8)
            for i, n in enumerate([1, 4096, 100_000, (1 << 20) + 3])}
    with tierd.connect(daemon.socket) as c:
        c.put_many("default", objs, durability="persisted")
        c.put("default", "single", b"exact bytes", durability="persisted")
    daemon.kill()
    daemon.start()
    with tierd.connect(daemon.socket) as c:
        for k, v in objs.items():
            with c.get("default", k) as lease:
                assert np.array_equal(lease.array, v), k
        assert c.get("default", "single").tobytes() == b"exact bytes"
