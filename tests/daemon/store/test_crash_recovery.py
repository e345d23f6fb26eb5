"""SIGKILL a writer at >= 50 random points: after each reopen every acknowledged
object reads back bit-exact, nothing unacknowledged is visible, fsck is clean."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tierd_daemon.store import Store, StoreConfig

from crash_writer import content  # noqa: E402  (tests/daemon/store on sys.path via rootdir)

MiB = 1 << 20
KILLS = int(os.environ.get("TIERD_CRASH_KILLS", "50"))
WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crash_writer.py")


def parse(lines):
    """-> (acknowledged final states, states possibly in flight at the kill)."""
    acked, begun = {}, {}
    for line in lines:
        parts = line.split()
        if parts[0] == "B":
            _, op, key, seed, size = parts
            begun[key] = None if op == "del" else (int(seed), int(size))
        elif parts[0] == "A":
            _, op, key = parts
            acked[key] = begun.pop(key)
    return acked, begun


@pytest.mark.slow
def test_sigkill_at_random_points(disk_dir, python_env):
    path = str(disk_dir / "store")
    model: dict[str, tuple[int, int] | None] = {}
    rng = random.Random(1234)
    in_flight_kills = 0
    for cycle in range(KILLS):
        p = subprocess.Popen([sys.executable, WRITER, path, str(cycle)], env=python_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = p.stdout.readline()
        assert first.strip() == "READY", (first, p.stderr.read())
        time.sleep(rng.uniform(0.0, 0.25))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        # Read through the same buffered stream readline() used (communicate()
        # would read the raw fd and lose what readline() buffered ahead).
        out, err = p.stdout.read(), p.stderr.read()
        p.stdout.close()
        p.stderr.close()
        assert p.returncode == -signal.SIGKILL, err
        acked, pending = parse(out.splitlines())
        in_flight_kills += bool(pending)
        model.update(acked)

        with Store.open(path, StoreConfig(capacity=96 * MiB)) as store:
            visible = set(k.decode() for k in store.list("default"))
            for key in set(model) | set(pending) | visible:
                allowed = {model.get(key)}
                if key in pending:
                    allowed.add(pending[key])
                if store.contains("default", key):
                    got = store.get("default", key).tobytes()
                    match = [st for st in allowed if st is not None
                             and len(got) == st[1] and got == content(*st)]
                    assert match, f"cycle {cycle}: {key} holds bytes that were never acknowledged"
                    model[key] = match[0]
                else:
                    assert None in allowed, f"cycle {cycle}: acknowledged {key} is gone"
                    model[key] = None
            rep = store.fsck(verify_data=False)
            assert rep.ok, (cycle, rep.errors)
            u = store.usage()
            live = sum(-(-st[1] // store.page) for st in model.values() if st)
            assert u.used_bytes == live * store.page, f"cycle {cycle}: leaked space"
    # The kills must really have landed inside operations, not only between them.
    assert in_flight_kills >= KILLS // 2, f"only {in_flight_kills} kills hit an operation"
