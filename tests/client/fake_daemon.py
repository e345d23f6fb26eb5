"""A tiny in-process stand-in for `tierd serve`, for the client's pure unit tests.

It speaks tierd.protocol (framing, handshake, memfd via SCM_RIGHTS) with a
bump allocator and a dict for the catalog: enough to test the client's
framing, fd handling, batching, leases and reconnect without the real
daemon. Integration tests use the real one (the `daemon` fixture).
"""
from __future__ import annotations

import os
import socket
import threading

from tierd import protocol
from tierd.errors import InvalidArgument, NotFound, UnknownNamespace


class FakeDaemon:
    def __init__(self, path: str, namespaces=("default", "cache"), arena_bytes=1 << 26,
                 max_frame=1 << 20, version=protocol.PROTOCOL_VERSION) -> None:
        self.path, self.max_frame, self.version = path, max_frame, version
        self.arena_bytes = arena_bytes
        self.ns = {}
        for n in namespaces:
            fd = os.memfd_create(f"fake-{n}")
            os.ftruncate(fd, arena_bytes)
            self.ns[n] = {"fd": fd, "next": 0, "objects": {}, "tokens": {}}
        self.requests: list[tuple[str, dict]] = []
        self.leases: dict[int, tuple] = {}
        self._lease_id = 0
        self._token = 0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self.srv = None

    def start(self) -> "FakeDaemon":
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(16)
        threading.Thread(target=self._accept, args=(self.srv,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection (a daemon that died)."""
        if self.srv is not None:
            self.srv.close()
            self.srv = None
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self._conns.clear()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def _accept(self, srv) -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            self._conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        reader = protocol.FrameReader(self.max_frame)
        hello = False
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                for msg in reader.feed(data):
                    if not hello:
                        hello = True
                        if msg.get("v") != self.version:
                            c.sendall(protocol.pack({"ok": False, "error": {
                                "code": "PROTOCOL_ERROR", "message": "wrong version"}}))
                            return
                        c.sendall(protocol.pack({"ok": True, "v": self.version,
                                                 "server": "fake/0", "max_frame": self.max_frame,
                                                 "page_size": 4096,
                                                 "namespaces": sorted(self.ns)}))
                        continue
                    try:
                        rid, op, args = protocol.check_request(msg)
                        self.requests.append((op, args))
                        result, fd = self._handle(op, args)
                        reply = protocol.pack({"id": rid, "ok": True, "result": result})
                        if fd is not None:
                            socket.send_fds(c, [reply], [fd])
                        else:
                            c.sendall(reply)
                    except Exception as e:
                        c.sendall(protocol.pack(protocol.error_reply(msg.get("id"), e)))
        except OSError:
            return

    def _nsd(self, ns):
        if ns not in self.ns:
            raise UnknownNamespace(f"unknown namespace {ns!r}")
        return self.ns[ns]

    def _handle(self, op, a):
        with self._lock:
            if op == "open_ns":
                d = self._nsd(a["ns"])
                return ({"ns": a["ns"], "arena_bytes": self.arena_bytes, "page_size": 4096,
                         "durable": a["ns"] == "default", "fd": True}, d["fd"])
            if op == "alloc":
                d = self._nsd(a["ns"])
                out = []
                for key, n in a["items"]:
                    off = d["next"]
                    if off + n > self.arena_bytes:
                        off = 0  # wrap: the fake ignores reuse hazards
                    d["next"] = off + (n + 4095) // 4096 * 4096
                    self._token += 1
                    d["tokens"][self._token] = (protocol.as_key(key), off, n)
                    out.append({"token": self._token, "offset": off})
                return out, None
            if op == "commit":
                d = self._nsd(a["ns"])
                if a.get("durability", "staged") not in protocol.DURABILITIES:
                    raise InvalidArgument(f"bad durability {a.get('durability')!r}")
                for t in a["tokens"]:
                    key, off, n = d["tokens"].pop(t)
                    d["objects"][key] = (off, n)
                return None, None
            if op == "abort":
                d = self._nsd(a["ns"])
                for t in a["tokens"]:
                    d["tokens"].pop(t, None)
                return None, None
            if op == "get":
                d = self._nsd(a["ns"])
                out = []
                for k in a["keys"]:
                    o = d["objects"].get(protocol.as_key(k))
                    if o is None:
                        out.append(None)
                        continue
                    lid = None
                    if a.get("lease"):
                        self._lease_id += 1
                        lid = self._lease_id
                        self.leases[lid] = (a["ns"], k)
                    out.append({"offset": o[0], "size": o[1], "tier": "dram", "lease": lid})
                return out, None
            if op == "release":
                for lid in a["leases"]:
                    self.leases.pop(lid, None)
                return None, None
            if op in ("delete", "contains"):
                d = self._nsd(a["ns"])
                keys = [protocol.as_key(k) for k in a["keys"]]
                if op == "delete":
                    return [d["objects"].pop(k, None) is not None for k in keys], None
                return [k in d["objects"] for k in keys], None
            if op == "list":
                d = self._nsd(a["ns"])
                pfx = protocol.as_key(a.get("prefix", b""))
                after = a.get("after")
                keys = sorted(k for k in d["objects"] if k.startswith(pfx)
                              and (after is None or k > protocol.as_key(after)))
                lim = a.get("limit", 1000)
                return {"keys": keys[:lim], "more": len(keys) > lim}, None
            if op == "stat":
                d = self._nsd(a["ns"])
                k = protocol.as_key(a["key"])
                if k not in d["objects"]:
                    raise NotFound(f"no object {k!r}")
                return {"size": d["objects"][k][1], "tier": "dram", "state": "dirty",
                        "checksum": 0, "mtime_ns": 0}, None
            if op == "flush":
                return None, None
            if op == "status":
                return {"namespaces": {n: {"dram_used": d["next"],
                                           "dram_capacity": self.arena_bytes}
                                       for n, d in self.ns.items()}}, None
            raise InvalidArgument(f"fake daemon: op {op} not supported")
