"""A client SIGKILLed while holding leases: leases freed, memory returned."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from rawwire import DataConn

HERE = os.path.dirname(os.path.abspath(__file__))

HOLDER = """
import sys, time
from rawwire import DataConn
c = DataConn(sys.argv[1])
for i in range(8):
    assert c.put("default", b"obj%d" % i, bytes([i]) * 1000000)["ok"]
rep = c.call("get", ns="default", keys=[b"obj%d" % i for i in range(8)], lease=True)
assert rep["ok"] and all(r["lease"] for r in rep["result"])
a = c.call("alloc", ns="default", items=[[b"never-committed", 3000000]])
assert a["ok"]
print("HOLDING", flush=True)
time.sleep(600)
"""


def ns_status(c, ns="default"):
    return c.call("status")["result"]["namespaces"][ns]


def test_killed_client_releases_everything(daemon, python_env):
    env = dict(python_env, PYTHONPATH=HERE + os.pathsep + python_env["PYTHONPATH"])
    p = subprocess.Popen([sys.executable, "-c", HOLDER, daemon.socket], env=env,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "HOLDING"
    c = DataConn(daemon.socket)
    before = ns_status(c)
    assert before["leases"] == 8 and before["pinned_bytes"] >= 8 * 1000000
    assert before["dram_used"] >= 8 * 1000000 + 3000000
    # Leased objects cannot be reclaimed: a delete detaches but keeps the bytes.
    assert c.call("delete", ns="default", keys=[b"obj0"])["result"] == [True]
    assert ns_status(c)["dram_used"] == before["dram_used"]
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    p.stdout.close()
    # The flusher pins what it is writing back: let it finish, so every pin
    # left would be a leaked lease.
    assert c.call("flush", ns="default")["ok"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = ns_status(c)
        if after["leases"] == 0 and after["pinned_bytes"] == 0:
            break
        time.sleep(0.05)
    assert after["leases"] == 0 and after["pinned_bytes"] == 0
    # The deleted object's pages and the aborted allocation came back.
    assert after["dram_used"] <= before["dram_used"] - 1000000 - 3000000
    assert c.get("default", b"obj1") == bytes([1]) * 1000000   # data untouched
    assert "released 8 leases, aborted 1 allocations" in daemon.log()
    c.close()


def test_lease_timeout(daemon_factory):
    d = daemon_factory(lease_timeout=1)
    c = DataConn(d.socket)
    assert c.put("default", b"k", b"x" * 5000)["ok"]
    rep = c.call("get", ns="default", keys=[b"k"], lease=True)
    lid = rep["result"][0]["lease"]
    assert ns_status(c)["leases"] == 1
    time.sleep(2.5)
    assert ns_status(c)["leases"] == 0
    assert "expired after 1 s without release" in d.log()
    assert c.call("release", leases=[lid])["ok"]      # releasing again is harmless
    c.close()
