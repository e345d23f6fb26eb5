"""kill -9 of the daemon at >= 30 random points during saves: after restart
load() returns the newest complete snapshot bit-exact, never a partial one.
A client killed mid-save leaves no visible snapshot and no leaked space."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import tierd
from ckpt_writer import state_for
from test_checkpoint_roundtrip import assert_same

HERE = os.path.dirname(os.path.abspath(__file__))
KILLS = int(os.environ.get("TIERD_CKPT_KILLS", "30"))


def writer(d, env, run, first, lazy=False):
    args = [sys.executable, os.path.join(HERE, "ckpt_writer.py"), d.socket, run, str(first)]
    p = subprocess.Popen(args + (["lazy"] if lazy else []), env=env, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "READY"
    return p


def drain(p) -> list[str]:
    p.wait(timeout=30)
    out = p.stdout.read().splitlines()
    p.stdout.close()
    return out


def test_daemon_sigkill_during_saves(daemon_factory, python_env):
    env = dict(python_env, PYTHONPATH=HERE + os.pathsep + python_env["PYTHONPATH"])
    d = daemon_factory(dram="64MiB", capacity="256MiB")
    rng = random.Random(4)
    acked = 0          # newest step acknowledged as persisted
    nxt = 1
    for cycle in range(KILLS):
        p = writer(d, env, "crash", nxt, lazy=cycle % 3 == 2)
        time.sleep(rng.uniform(0.05, 0.6))
        d.kill()                                   # the daemon dies mid-save
        p.send_signal(signal.SIGKILL)
        lines = drain(p)
        started = [int(x.split()[1]) for x in lines if x.startswith("S ")]
        persisted = [int(x.split()[1]) for x in lines if x.startswith("P ")]
        if persisted:
            acked = max(acked, max(persisted))
        d.start()
        with tierd.connect(d.socket) as c:
            ck = c.checkpoints("crash", keep_last=2)
            latest = ck.latest()
            in_flight = max(started, default=0)
            assert latest is not None or acked == 0, f"cycle {cycle}: latest lost"
            if latest is not None:
                # Newest complete snapshot: at least the last acknowledged
                # one; at most the one that was in flight (it may have
                # committed before its acknowledgement reached the writer).
                assert acked <= latest <= max(in_flight, acked), (cycle, acked, latest, in_flight)
                for s in ck.steps():                 # every visible snapshot is whole
                    assert_same(state_for(s), ck.load(s))
                acked = latest
            nxt = max(in_flight, acked) + 1
    assert acked >= KILLS // 2, f"only {acked} steps persisted in {KILLS} cycles"
    d.stop()
    r = subprocess.run([sys.executable, "-m", "tierd_daemon", "-q", "fsck", "--config",
                        d.config_path], env=python_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_client_killed_mid_save_leaves_nothing(daemon_factory, python_env):
    env = dict(python_env, PYTHONPATH=HERE + os.pathsep + python_env["PYTHONPATH"])
    d = daemon_factory(dram="64MiB", capacity="256MiB")
    with tierd.connect(d.socket) as c:
        keeper = c.checkpoints("keeper", keep_last=2)      # another run, untouched throughout
        keeper.save(100, state_for(100)).wait("persisted")
        c.flush()
        base = c.status()["namespaces"]["default"]["nvme_used"]
        for attempt in range(5):
            p = writer(d, env, "victim", 200 + attempt * 10, lazy=True)
            time.sleep(0.05 + 0.03 * attempt)
            p.send_signal(signal.SIGKILL)          # the trainer dies mid-save
            drain(p)
        ck = c.checkpoints("victim", keep_last=2)   # a new manager collects at open
        for s in ck.steps():                        # only whole snapshots are visible
            assert_same(state_for(s), ck.load(s))
        for s in ck.steps():
            ck.delete(s)
        assert ck.steps() == [] and ck.latest() is None
        # Everything the dead saves left behind is gone; the other run is intact.
        assert c.status()["namespaces"]["default"]["nvme_used"] == base
        assert keeper.steps() == [100]
        assert_same(state_for(100), keeper.load())
    d.stop()
    r = subprocess.run([sys.executable, "-m", "tierd_daemon", "-q", "fsck", "--config",
                        d.config_path], env=python_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
