"""sd_notify(3) by hand: readiness, status, stopping and watchdog for systemd.

The protocol is one datagram of newline-separated ``KEY=VALUE`` lines sent to
the AF_UNIX socket named by $NOTIFY_SOCKET. A name starting with ``@`` is an
abstract socket (the ``@`` stands for a leading NUL byte). Without
$NOTIFY_SOCKET (not started by systemd, or a Type= other than notify) every
call is a no-op that returns False, so the daemon calls these
unconditionally.

tierd.service sets NotifyAccess=main: only the daemon's own PID may notify,
which every thread of this process satisfies.

The watchdog (WatchdogSec= in the unit) is driven by :class:`Watchdog`: a
daemon thread that, every WATCHDOG_USEC/2, runs a health callback and pings
only while it returns True. A daemon whose health check fails (or hangs)
stops pinging, and systemd kills and restarts it: a wedged daemon is worse
than a restarted one.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Callable, Mapping

log = logging.getLogger(__name__)

__all__ = ["notify", "ready", "status", "stopping", "watchdog_ping", "extend_timeout",
           "watchdog_interval", "Watchdog"]


def _address(name: str) -> str | bytes | None:
    """The sockaddr for a $NOTIFY_SOCKET value, or None if unsupported."""
    if name.startswith("@"):
        # Abstract namespace: leading NUL, no trailing NUL, no filesystem node.
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    # systemd >= 254 also hands out vsock:CID:PORT for VMs; tierd runs on the
    # host, so that form is not supported and is reported, not guessed at.
    return None


def notify(state: str, *, env: Mapping[str, str] | None = None) -> bool:
    """Send one sd_notify message (e.g. "READY=1\\nSTATUS=serving").

    Returns True when the datagram was sent, False when $NOTIFY_SOCKET is
    unset (not under systemd) or the send failed (logged; never raised: a
    notification must not take the daemon down).
    """
    env = os.environ if env is None else env
    name = env.get("NOTIFY_SOCKET")
    if not name:
        return False
    addr = _address(name)
    if addr is None:
        log.warning("NOTIFY_SOCKET=%r is not a path or an abstract socket; not notifying", name)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            # One datagram carries the whole message: systemd reads one
            # message per datagram, so it must not be split.
            sock.sendall(state.encode())
    except OSError as e:
        log.warning("sd_notify to %s failed: %s", name, e)
        return False
    return True


def _one_line(text: str) -> str:
    # A newline would start a new KEY=VALUE assignment: keep STATUS one line.
    return " ".join(str(text).splitlines())


def ready(status: str = "") -> bool:
    """READY=1 (with an optional STATUS= line): the daemon serves requests."""
    msg = "READY=1"
    if status:
        msg += "\nSTATUS=" + _one_line(status)
    return notify(msg)


def status(text: str) -> bool:
    """STATUS=text, shown by `systemctl status tierd`."""
    return notify("STATUS=" + _one_line(text))


def stopping() -> bool:
    """STOPPING=1: shutdown (the durable flush) has begun."""
    return notify("STOPPING=1")


def watchdog_ping() -> bool:
    """WATCHDOG=1: one keep-alive for WatchdogSec=."""
    return notify("WATCHDOG=1")


def extend_timeout(seconds: float) -> bool:
    """EXTEND_TIMEOUT_USEC: ask systemd for `seconds` more (start or stop).

    A long durable flush at SIGTERM can call this periodically so that
    TimeoutStopSec= counts from the last sign of progress.
    """
    return notify(f"EXTEND_TIMEOUT_USEC={max(1, int(seconds * 1_000_000))}")


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (WATCHDOG_USEC/2), or None if the watchdog is off.

    Off when WATCHDOG_USEC is unset, not a positive integer, or when
    WATCHDOG_PID is set to another process (the variables were inherited by
    a child that systemd does not watch), as in sd_watchdog_enabled(3).
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not an integer; watchdog off", usec)
        return None
    if value <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            log.warning("WATCHDOG_PID=%r is not an integer; watchdog off", pid)
            return None
    return value / 2 / 1_000_000


class Watchdog:
    """Pings the systemd watchdog every WATCHDOG_USEC/2 while `health()` is True.

    `health` is called from the watchdog thread before every ping; it must be
    quick and thread-safe (e.g. "did the flusher and the engine make progress
    since the last call?"). When it returns False or raises, the thread logs
    why, sets STATUS= to say so, and stops pinging for good: systemd then
    kills the daemon after WatchdogSec and Restart=on-failure starts a fresh
    one. Without WATCHDOG_USEC (or with WATCHDOG_PID naming another process)
    `start()` does nothing and returns False.
    """

    def __init__(self, health: Callable[[], bool] | None = None, *,
                 env: Mapping[str, str] | None = None) -> None:
        self._health = health if health is not None else (lambda: True)
        self._interval = watchdog_interval(env)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0
        self.failed_reason: str | None = None

    @property
    def enabled(self) -> bool:
        return self._interval is not None

    @property
    def interval(self) -> float | None:
        """Seconds between pings, or None when the watchdog is off."""
        return self._interval

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start the ping thread; False (and nothing started) when disabled."""
        if self._interval is None:
            return False
        if self._thread is not None:
            raise RuntimeError("watchdog already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tierd-watchdog", daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop pinging (at shutdown, after STOPPING=1). Idempotent."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        self._thread = None

    def _check(self) -> str | None:
        """None when healthy, else the reason."""
        try:
            ok = self._health()
        except Exception as e:  # noqa: BLE001 - any failure of the check is "unhealthy"
            return f"health check raised {type(e).__name__}: {e}"
        if ok:
            return None
        return f"health check {getattr(self._health, '__qualname__', self._health)!r} returned {ok!r}"

    def _run(self) -> None:
        interval = self._interval
        assert interval is not None
        # Deadline-based so that a slow health check does not stretch the
        # cadence: the next ping is due `interval` after the previous was due.
        due = time.monotonic()
        while not self._stop.is_set():
            reason = self._check()
            if reason is not None:
                self.failed_reason = reason
                log.error("watchdog: %s; no more WATCHDOG=1 pings, systemd will restart tierd",
                          reason)
                status(f"unhealthy: {reason}")
                return
            watchdog_ping()
            self.pings += 1
            due += interval
            now = time.monotonic()
            if due < now:  # fell behind (suspend, long check): do not burst
                due = now + interval
            self._stop.wait(due - now)
