"""sd_notify client against a real AF_UNIX datagram socket (path and abstract)."""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import pytest

from tierd_daemon import sdnotify


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request, tmp_path, monkeypatch):
    """A bound datagram socket; $NOTIFY_SOCKET names it as systemd would."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        addr = str(tmp_path / "notify.sock")
        sock.bind(addr)
        env_value = addr
    else:
        name = f"tierd-test-{uuid.uuid4().hex}"
        sock.bind(b"\0" + name.encode())
        env_value = "@" + name
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", env_value)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def _recv(sock) -> str:
    return sock.recv(4096).decode()


def test_unset_is_noop(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.ready() is False
    assert sdnotify.watchdog_ping() is False


def test_messages_arrive(notify_socket):
    assert sdnotify.ready() is True
    assert _recv(notify_socket) == "READY=1"
    assert sdnotify.ready("serving 2 namespaces") is True
    assert _recv(notify_socket) == "READY=1\nSTATUS=serving 2 namespaces"
    assert sdnotify.status("flushing\n3 GiB left") is True
    assert _recv(notify_socket) == "STATUS=flushing 3 GiB left"  # one line, no injection
    assert sdnotify.stopping() is True
    assert _recv(notify_socket) == "STOPPING=1"
    assert sdnotify.watchdog_ping() is True
    assert _recv(notify_socket) == "WATCHDOG=1"
    assert sdnotify.extend_timeout(2.5) is True
    assert _recv(notify_socket) == "EXTEND_TIMEOUT_USEC=2500000"


def test_dead_socket_returns_false(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert sdnotify.notify("READY=1") is False


@pytest.mark.parametrize("env,expected", [
    ({}, None),
    ({"WATCHDOG_USEC": "200000"}, 0.1),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "junk"}, None),
    ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}, None),  # someone else's watchdog
    ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}, 0.1),
])
def test_watchdog_interval(env, expected):
    assert sdnotify.watchdog_interval(env) == expected
    assert sdnotify.Watchdog(env=env).enabled is (expected is not None)


def test_watchdog_disabled_does_not_start(notify_socket):
    wd = sdnotify.Watchdog()
    assert wd.start() is False
    assert not wd.running
    wd.stop()


def _collect(sock, seconds: float) -> list[tuple[float, str]]:
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append((time.monotonic(), _recv(sock)))
        except socket.timeout:
            break
    return out


def test_watchdog_cadence_and_unhealthy_stop(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    healthy = threading.Event()
    healthy.set()
    wd = sdnotify.Watchdog(healthy.is_set)
    assert wd.interval == pytest.approx(0.1)
    assert wd.start() is True
    try:
        msgs = _collect(notify_socket, 1.05)
        pings = [t for t, m in msgs if m == "WATCHDOG=1"]
        assert [m for _, m in msgs if m != "WATCHDOG=1"] == []
        # First ping at once, then every 0.1 s: ~11 in 1.05 s. Generous
        # bounds for a loaded CI box, but tight enough to catch a cadence of
        # WATCHDOG_USEC (5) or a busy loop (hundreds).
        assert 7 <= len(pings) <= 13, len(pings)
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert sum(gaps) / len(gaps) == pytest.approx(0.1, rel=0.3)

        healthy.clear()
        msgs = _collect(notify_socket, 0.5)
        # At most one ping already in flight, then the failure STATUS, then silence.
        texts = [m for _, m in msgs]
        assert texts.count("WATCHDOG=1") <= 1
        assert texts[-1].startswith("STATUS=unhealthy: health check")
        assert "returned False" in texts[-1]
        assert not wd.running
        assert wd.failed_reason is not None
        assert _collect(notify_socket, 0.3) == []
    finally:
        wd.stop()


def test_watchdog_health_exception_stops(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "100000")

    def health():
        raise RuntimeError("flusher stuck for 40 s")

    wd = sdnotify.Watchdog(health)
    assert wd.start()
    msg = _recv(notify_socket)
    assert msg.startswith("STATUS=unhealthy: health check raised RuntimeError: flusher stuck")
    wd.stop()
    assert wd.pings == 0


def test_watchdog_stop_is_prompt(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")  # 10 s between pings
    wd = sdnotify.Watchdog()
    assert wd.start()
    assert _recv(notify_socket) == "WATCHDOG=1"
    t0 = time.monotonic()
    wd.stop()
    assert time.monotonic() - t0 < 1.0
    assert not wd.running
