"""Who is on the other end of a Unix socket (SO_PEERCRED), and what they may do."""
from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int
    groups: frozenset[int]

    @property
    def is_admin(self) -> bool:
        """Root and the daemon's own uid administer the daemon."""
        return self.uid == 0 or self.uid == os.getuid()

    def __str__(self) -> str:
        return f"pid {self.pid} uid {self.uid}"


def peer_of(sock: socket.socket) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid, frozenset({gid} | _supplementary_groups(pid)))


def _supplementary_groups(pid: int) -> set[int]:
    # SO_PEERCRED carries only the primary gid; the kernel's view of the
    # process's other groups is in /proc. If the process is gone already,
    # the connection is about to end anyway: primary gid only.
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except (OSError, ValueError):
        pass
    return set()
