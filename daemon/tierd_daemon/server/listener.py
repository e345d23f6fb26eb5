"""The Unix socket: created with the configured mode and group, one thread per client."""
from __future__ import annotations

import grp
import logging
import os
import socket
import stat
import threading

from tierd.errors import Busy, TierdError
from tierd.protocol import error_reply, pack

log = logging.getLogger("tierd.server")


def _resolve_group(spec: str) -> int | None:
    if not spec:
        return None
    if spec.isdigit():
        return int(spec)
    try:
        return grp.getgrnam(spec).gr_gid
    except KeyError:
        raise TierdError(f"server.socket_group: no group named {spec!r}") from None


def bind_socket(path: str, mode: int, group: str) -> socket.socket:
    """Bind the control socket; refuse to steal one a live daemon answers on."""
    directory = os.path.dirname(path) or "."
    gid = _resolve_group(group)
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o750, exist_ok=True)
        if gid is not None:
            os.chown(directory, -1, gid)
    if os.path.exists(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise TierdError(f"{path} exists and is not a socket; remove it or set server.socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            raise TierdError(f"another tierd is serving on {path}; stop it first "
                             "(systemctl stop tierd) or set server.socket")
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)   # stale socket of a dead daemon
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bind under a restrictive umask so the socket is never briefly open to all.
    old = os.umask(0o777)
    try:
        sock.bind(path)
    except OSError as e:
        sock.close()
        raise TierdError(f"cannot bind {path}: {e.strerror}; check server.socket") from None
    finally:
        os.umask(old)
    if gid is not None:
        os.chown(path, -1, gid)
    os.chmod(path, mode)
    sock.listen(128)
    return sock


class Listener:
    def __init__(self, sock: socket.socket, max_clients: int, handle) -> None:
        self.sock = sock
        self.max_clients = max_clients
        self.handle = handle          # handle(conn_socket) runs one connection to its end
        self.active = 0
        self._lock = threading.Lock()
        self._closing = False
        self.thread = threading.Thread(target=self._accept_loop, name="tierd-accept", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self._closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                if self._closing:
                    return
                continue
            with self._lock:
                full = self.active >= self.max_clients
                if not full:
                    self.active += 1
            if full:
                # Bounded: say why, then close; the client may retry.
                try:
                    conn.sendall(pack(error_reply(None, Busy(
                        f"tierd serves at most {self.max_clients} clients (server.max_clients)"))))
                finally:
                    conn.close()
                continue
            threading.Thread(target=self._run, args=(conn,), name="tierd-conn",
                             daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        finally:
            with self._lock:
                self.active -= 1
