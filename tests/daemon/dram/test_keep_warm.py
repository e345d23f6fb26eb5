"""Under a hypervisor the daemon reads a byte of every arena page each
interval, so the host keeps the arenas resident ([dram] keep_warm); on bare
metal ("auto") it does not, and the log and status say which."""
from __future__ import annotations

import time

import numpy as np
import pytest

import tierd
from tierd_daemon.dram import keepwarm

PAGE = keepwarm.PAGE


def test_touch_reads_the_first_byte_of_every_page(monkeypatch):
    monkeypatch.setattr(keepwarm, "SLICE", 16 * PAGE)          # many slices, one partial
    a = np.zeros(100 * PAGE + 123, dtype=np.uint8)
    a[::PAGE] = 1                                              # the byte of each page it reads
    a[1::PAGE] = 7                                             # bytes it must not read
    assert keepwarm.touch(a) == 101


def test_touch_stops_when_asked():
    import threading
    stop = threading.Event()
    stop.set()
    assert keepwarm.touch(np.ones(8 * PAGE, dtype=np.uint8), stop) == 0


@pytest.mark.parametrize("mode", ["on", "off", "auto"])
def test_decide_follows_the_setting_and_the_machine(mode):
    on, why = keepwarm.decide(mode)
    expect = {"on": True, "off": False, "auto": keepwarm.hypervisor() is not None}[mode]
    assert on is expect and why


def _wait_passes(c, n: int, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = c.status()["dram"]
        if st["keep_warm_passes"] >= n or time.monotonic() > deadline:
            return st
        time.sleep(0.05)


def test_daemon_keeps_its_arenas_warm_when_on(daemon_factory):
    d = daemon_factory(extra='[dram]\nkeep_warm = "on"\nkeep_warm_interval_s = 0.05\n')
    with tierd.connect(d.socket) as c:
        c.put("default", "k", b"x" * 10000, durability="persisted")
        st = _wait_passes(c, 3)
        assert st["keep_warm"] and st["keep_warm_interval_s"] == 0.05
        assert st["keep_warm_passes"] >= 3, st
        assert st["keep_warm_last_pass_ms"] is not None
        assert bytes(c.get("default", "k").array) == b"x" * 10000   # reads change nothing
    assert "keeping the DRAM arenas warm" in d.log()
    assert d.stop() == 0


def test_daemon_off_does_nothing_and_says_so(daemon_factory):
    d = daemon_factory(extra='[dram]\nkeep_warm = "off"\n')
    with tierd.connect(d.socket) as c:
        time.sleep(0.2)
        st = c.status()["dram"]
    assert st == {"keep_warm": False, "keep_warm_why": 'keep_warm = "off"',
                  "keep_warm_interval_s": None, "keep_warm_passes": 0,
                  "keep_warm_last_pass_ms": None}
    assert "not keeping the DRAM arenas warm" in d.log()
