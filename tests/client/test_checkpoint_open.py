"""ck.open(): every tensor a read-only view of the daemon's memory, no copy,
including tensors cut over several chunks (hot in DRAM and cold from NVMe)."""
from __future__ import annotations

import numpy as np

import tierd
from tierd.stitch import _Mapping

MiB = 1 << 20


def big_state(step: int) -> dict:
    rng = np.random.default_rng(step)
    return {
        # 3.5 chunks of 1 MiB: the last piece ends mid-page on purpose.
        "embed": rng.standard_normal(7 * MiB // 8 + 3, dtype=np.float32),
        "w": rng.standard_normal((256, 256), dtype=np.float32),   # one chunk of its own
        "bias": np.arange(10, dtype=np.float16),                  # packed with others
        "step": step,
    }


def stitched(arr: np.ndarray) -> bool:
    base = arr
    while base is not None and not isinstance(base, _Mapping):
        base = getattr(base, "base", None)
    return isinstance(base, _Mapping)


def check_open(ck, want: dict) -> None:
    with ck.open() as snap:
        got = snap.state
        for name in ("embed", "w", "bias"):
            assert np.array_equal(got[name], want[name]), name
            assert got[name].dtype == want[name].dtype and not got[name].flags.writeable
        assert got["step"] == want["step"]
        assert stitched(got["embed"]), "a tensor over several chunks was copied"
        assert not stitched(got["w"]) and got["w"].base is not None   # a plain arena view


def test_multi_chunk_tensor_is_mapped_not_copied(daemon):
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("open", chunk_bytes=MiB)
        s = big_state(1)
        ck.save(1, s).wait("persisted")
        check_open(ck, s)                               # hot: still in DRAM


def test_cold_open_after_a_daemon_restart(daemon):
    s = big_state(2)
    with tierd.connect(daemon.socket) as c:
        c.checkpoints("open", chunk_bytes=MiB).save(2, s).wait("persisted")
    daemon.stop()
    daemon.start()                                      # DRAM tier empty: read from NVMe
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("open", chunk_bytes=MiB)
        check_open(ck, s)
        assert c.status()["namespaces"]["default"]["hits_nvme"] > 0
        np.testing.assert_array_equal(ck.load()["embed"], s["embed"])   # load() agrees


def test_views_stay_readable_while_the_snapshot_is_open_and_others_write(daemon):
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("open", chunk_bytes=MiB)
        s = big_state(3)
        ck.save(3, s).wait("persisted")
        with ck.open() as snap:
            embed = snap.state["embed"]
            # Fill the arena with other steps: leased chunks must not move.
            for step in range(4, 10):
                ck.save(step, big_state(step)).wait("persisted")
            assert np.array_equal(embed, s["embed"])
