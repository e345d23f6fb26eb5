"""A deliberately minimal wire client for hostile and cross-uid tests.

Not the real client (tierd.Client): it sends exactly the bytes a test asks
for, so malformed input can be crafted, and it records every fd received.
"""
from __future__ import annotations

import socket

from tierd.protocol import PROTOCOL_VERSION, FrameReader, pack


class RawConn:
    def __init__(self, path: str, hello: bool = True, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.reader = FrameReader(1 << 24)
        self.fds: list[int] = []
        self._next = 0
        self._ready: list[dict] = []
        self.hello = self.call_raw({"op": "hello", "v": PROTOCOL_VERSION}) if hello else None

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_msg(self) -> dict | None:
        """The next reply, or None when the daemon closed the connection."""
        while not self._ready:
            data, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 8)
            self.fds.extend(fds)
            if not data:
                return None
            self._ready.extend(self.reader.feed(data))
        return self._ready.pop(0)

    def call_raw(self, msg: dict) -> dict | None:
        self.send_bytes(pack(msg))
        return self.recv_msg()

    def call(self, op: str, **args) -> dict:
        self._next += 1
        reply = self.call_raw({"id": self._next, "op": op, "args": args})
        assert reply is not None, f"daemon closed the connection on {op}"
        assert reply.get("id") == self._next, reply
        return reply

    def close(self) -> None:
        self.sock.close()


class DataConn(RawConn):
    """RawConn plus the shared-memory data path (for daemon-level tests)."""

    def __init__(self, path: str, **kw) -> None:
        super().__init__(path, **kw)
        self.arenas: dict = {}

    def arena(self, ns: str):
        import mmap

        import numpy as np
        if ns not in self.arenas:
            rep = self.call("open_ns", ns=ns)
            assert rep["ok"], rep
            fd = self.fds.pop()
            mm = mmap.mmap(fd, rep["result"]["arena_bytes"])
            import os
            os.close(fd)
            self.arenas[ns] = np.frombuffer(mm, dtype=np.uint8)
        return self.arenas[ns]

    def put(self, ns: str, key: bytes, data: bytes, durability: str = "staged") -> dict:
        arena = self.arena(ns)
        rep = self.call("alloc", ns=ns, items=[[key, len(data)]])
        if not rep["ok"]:
            return rep
        slot = rep["result"][0]
        arena[slot["offset"]:slot["offset"] + len(data)] = memoryview(data)
        return self.call("commit", ns=ns, tokens=[slot["token"]], durability=durability)

    def get(self, ns: str, key: bytes, lease: bool = False) -> bytes | None:
        arena = self.arena(ns)
        rep = self.call("get", ns=ns, keys=[key], lease=lease)
        assert rep["ok"], rep
        r = rep["result"][0]
        if r is None:
            return None
        return arena[r["offset"]:r["offset"] + r["size"]].tobytes()


def error_of(rep: dict) -> tuple[str, str]:
    """(code, message) of a reply that must be an error."""
    assert not rep["ok"], rep
    return rep["error"]["code"], rep["error"]["message"]
