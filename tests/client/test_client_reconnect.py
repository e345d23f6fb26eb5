"""A daemon restart between two calls is invisible to the caller."""
import pytest

import tierd


def test_restart_between_calls(daemon):
    c = tierd.connect(daemon.socket, timeout=60)
    try:
        c.put("default", "before", b"one", durability="persisted")
        old = c.get("default", "before")
        daemon.stop()
        daemon.start()
        assert c.get("default", "before").tobytes() == b"one"   # reconnects transparently
        c.put("default", "after", b"two")
        assert c.get("default", "after").tobytes() == b"two"
        assert old.tobytes() == b"one"      # the old mapping is still readable memory
        old.release()                       # its lease died with the old daemon: no-op
        daemon.kill()
        daemon.start()
        assert c.contains("default", "before")
        assert sorted(c.list("default")) >= [b"after", b"before"]
    finally:
        c.close()


def test_no_reconnect(daemon):
    c = tierd.connect(daemon.socket, timeout=5, reconnect=False)
    try:
        daemon.stop()
        daemon.start()
        with pytest.raises(tierd.DaemonUnavailable):
            c.contains("default", "x")
    finally:
        c.close()


def test_gives_up_when_daemon_stays_down(daemon):
    c = tierd.connect(daemon.socket, timeout=1.5)
    try:
        daemon.stop()
        with pytest.raises(tierd.DaemonUnavailable, match="reconnect"):
            c.contains("default", "x")
    finally:
        c.close()


def test_restart_under_load(daemon):
    """Calls in flight when the daemon dies are retried on the new one; none fail."""
    import threading
    errors, done = [], []
    stop = threading.Event()

    def load(t):
        with tierd.connect(daemon.socket, timeout=60) as c:
            i = 0
            try:
                while not stop.is_set() or i < 20:
                    v = f"{t}:{i}".encode() * 50
                    c.put("default", f"load/{t}/{i % 8}", v, durability="persisted")
                    with c.get("default", f"load/{t}/{i % 8}") as lease:
                        assert lease.tobytes() == v
                    i += 1
            except Exception as e:  # reported below
                errors.append(f"thread {t} call {i}: {e!r}")
            done.append(i)
    threads = [threading.Thread(target=load, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    import time
    time.sleep(0.5)
    daemon.kill()
    daemon.start()
    time.sleep(0.5)
    stop.set()
    for th in threads:
        th.join(120)
    assert not errors, errors
    assert len(done) == 4
