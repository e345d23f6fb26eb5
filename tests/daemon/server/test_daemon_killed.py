"""Daemon SIGKILLed during puts, restarted: every put acknowledged as
persisted reads back exact; cache namespaces come back consistent (each
object verified or absent); the store is fsck-clean."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time

from daemon_writer import content
from rawwire import DataConn

HERE = os.path.dirname(os.path.abspath(__file__))
KILLS = int(os.environ.get("TIERD_DAEMON_KILLS", "6"))


def test_sigkill_daemon_during_puts(daemon_factory, python_env):
    env = dict(python_env, PYTHONPATH=HERE + os.pathsep + python_env["PYTHONPATH"])
    d = daemon_factory()
    rng = random.Random(7)
    persisted: dict[str, tuple[int, int]] = {}     # key -> (seed, size) last acked persisted
    for cycle in range(KILLS):
        w = subprocess.Popen([sys.executable, os.path.join(HERE, "daemon_writer.py"), d.socket,
                              str(cycle)], env=env, stdout=subprocess.PIPE, text=True)
        assert w.stdout.readline().strip() == "READY"
        time.sleep(rng.uniform(0.2, 0.8))
        d.kill()                                  # SIGKILL the daemon mid-stream
        w.wait(timeout=30)
        lines = w.stdout.read().splitlines()
        w.stdout.close()
        begun = {}
        in_flight = {}
        for line in lines:
            p = line.split()
            if p[0] == "B":
                begun[(p[1], p[2])] = (int(p[3]), int(p[4]), p[5])
            elif p[0] == "A":
                seed, size, dur = begun.pop((p[1], p[2]))
                if dur == "persisted":
                    persisted[p[2]] = (seed, size)
        in_flight = {k: v for k, v in begun.items()}
        d.start()
        c = DataConn(d.socket)
        for key, (seed, size) in persisted.items():
            got = c.get("default", key.encode())
            ok = got == content(seed, size)
            pend = in_flight.get(("default", key))
            if not ok and pend is not None:     # a newer put was in flight: it may have won
                ok = got == content(pend[0], pend[1])
            assert ok, f"cycle {cycle}: acknowledged persisted {key} lost or wrong"
            if pend is not None and got == content(pend[0], pend[1]):
                persisted[key] = (pend[0], pend[1])
        # Cache objects: whatever is there must verify (the daemon checks the
        # checksum on promotion); reading them all must not fail.
        listed = c.call("list", ns="cache", limit=1000)["result"]["keys"]
        for key in listed:
            c.get("cache", key)
        c.close()
    assert len(persisted) >= 10, "too few acknowledged puts for the test to mean anything"
    d.stop()
    r = subprocess.run([sys.executable, "-m", "tierd_daemon", "-q", "fsck", "--config",
                        d.config_path], env=python_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
