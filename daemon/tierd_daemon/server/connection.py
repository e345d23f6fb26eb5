"""One client connection: handshake, then ordered request -> response.

Bad input never takes the daemon down: a frame that cannot be decoded, or a
request without a readable id, gets an error and the connection is closed;
a request with a bad op or bad arguments gets an error reply and the
connection carries on. An unexpected exception is logged with its traceback
and answered with INTERNAL. Whatever ends the connection, its leases are
released and its pending allocations aborted (`finally` in serve()).
"""
from __future__ import annotations

import itertools
import logging
import socket
import time

from tierd import __version__
from tierd.errors import (InvalidArgument, PermissionDenied, ProtocolError,
                          TierdError)
from tierd.protocol import (CONTENT_DIGEST, DURABILITIES, PROTOCOL_VERSION, FrameReader, as_key,
                            check_request, error_reply, pack)
from tierd_daemon.server.peer import Peer, peer_of
from tierd_daemon.store.catalog import check_key

log = logging.getLogger("tierd.server")

_conn_ids = itertools.count(1)
RECV_BYTES = 1 << 16
LIST_LIMIT_MAX = 10000


class Connection:
    def __init__(self, daemon, sock: socket.socket) -> None:
        self.d = daemon
        self.sock = sock
        self.id = next(_conn_ids)
        self.peer: Peer = peer_of(sock)
        self.opened: set[str] = set()        # namespaces whose arena fd was sent
        self.reader = FrameReader(daemon.config.server.max_frame)

    # ---- the loop ----------------------------------------------------------------------

    def serve(self) -> None:
        self.d.clients_changed(+1)
        log.debug("client %s connected (conn %d)", self.peer, self.id)
        try:
            self._loop()
        except (ConnectionError, OSError) as e:
            log.debug("conn %d: %s", self.id, e)
        finally:
            leases, allocs = self.d.tier.drop_owner(self.id)
            if leases or allocs:
                log.info("client %s went away: released %d leases, aborted %d allocations",
                         self.peer, leases, allocs)
            self.d.clients_changed(-1)
            try:
                self.sock.close()
            except OSError:
                pass

    def _loop(self) -> None:
        hello_done = False
        while True:
            data = self.sock.recv(RECV_BYTES)
            if not data:
                return
            try:
                msgs = list(self.reader.feed(data))
            except ProtocolError as e:
                self._send(error_reply(None, e))
                log.info("conn %d (%s): %s; closing", self.id, self.peer, e)
                return
            for msg in msgs:
                if not hello_done:
                    if not self._hello(msg):
                        return
                    hello_done = True
                    continue
                try:
                    rid, op, args = check_request(msg)
                except ProtocolError as e:
                    self._send(error_reply(None, e))
                    log.info("conn %d (%s): %s; closing", self.id, self.peer, e)
                    return
                except TierdError as e:
                    self._send(error_reply(msg.get("id"), e))
                    continue
                self._dispatch(rid, op, args)

    def _hello(self, msg: dict) -> bool:
        if msg.get("op") != "hello" or msg.get("v") != PROTOCOL_VERSION:
            self._send(error_reply(None, ProtocolError(
                f"expected hello with protocol version {PROTOCOL_VERSION}, got "
                f"op={msg.get('op')!r} v={msg.get('v')!r}; upgrade the client or the daemon")))
            return False
        self._send({"ok": True, "v": PROTOCOL_VERSION, "server": f"tierd/{__version__}",
                    "max_frame": self.d.config.server.max_frame, "page_size": self.d.page,
                    "namespaces": self.d.visible_namespaces(self.peer)})
        return True

    def _dispatch(self, rid: int, op: str, args: dict) -> None:
        t0 = time.perf_counter()
        fd = None
        code = None
        try:
            handler = getattr(self, f"op_{op}")
            result = handler(**args)
            if isinstance(result, tuple):      # (result, fd) for open_ns
                result, fd = result
            reply = {"id": rid, "ok": True, "result": result}
        except TierdError as e:
            code = e.code
            reply = error_reply(rid, e)
        except Exception as e:  # a bug: say so, keep serving
            log.exception("conn %d: %s failed", self.id, op)
            from tierd.errors import Internal
            code = "INTERNAL"
            reply = error_reply(rid, Internal(f"{op} failed inside the daemon: "
                                              f"{type(e).__name__}: {e}"))
        self._send(reply, fd)
        self.d.request_done(op, time.perf_counter() - t0, code)

    def _send(self, msg: dict, fd: int | None = None) -> None:
        frame = pack(msg)
        if fd is None:
            self.sock.sendall(frame)
        else:
            sent = socket.send_fds(self.sock, [frame], [fd])
            if sent < len(frame):
                self.sock.sendall(frame[sent:])

    # ---- access control ----------------------------------------------------------------

    def _ns(self, ns: str):
        """The namespace's policy if this peer may use it (invariant 4)."""
        cfg = self.d.namespaces.get(ns)
        if cfg is None:
            from tierd.errors import UnknownNamespace
            raise UnknownNamespace(f"unknown namespace {ns!r}")
        if not (self.peer.is_admin or cfg.allows(self.peer.uid, self.peer.groups)):
            raise PermissionDenied(f"uid {self.peer.uid} may not use namespace {ns!r}; "
                                   f"see namespaces.{ns}.allow_uids / allow_gids")
        return cfg

    def _opened(self, ns: str):
        cfg = self._ns(ns)
        if ns not in self.opened:
            raise InvalidArgument(f"namespace {ns!r} is not open on this connection; "
                                  "send open_ns first")
        return cfg

    # ---- ops ---------------------------------------------------------------------------

    def op_open_ns(self, ns: str):
        cfg = self._ns(ns)
        arena = self.d.tier.tier(ns).arena
        self.opened.add(ns)
        return ({"ns": ns, "arena_bytes": arena.nbytes, "page_size": self.d.page,
                 "durable": cfg.durable, "fd": True}, arena.fd)

    def op_alloc(self, ns: str, items: list):
        self._opened(ns)
        parsed = []
        for it in items:
            if not (isinstance(it, list) and len(it) in (2, 3)
                    and all(isinstance(x, int) and not isinstance(x, bool) for x in it[1:])
                    and it[1] >= 0 and (len(it) == 2 or 1 <= it[2] <= 64)):
                raise InvalidArgument("alloc: each item must be [key, nbytes >= 0] or "
                                      "[key, nbytes, itemsize 1..64] (key null: named at commit)")
            key = None if it[0] is None else self._key(it[0])
            parsed.append((key, it[1], it[2] if len(it) == 3 else 1))
        named = [p[0] for p in parsed if p[0] is not None]
        if len(set(named)) != len(named):
            raise InvalidArgument("alloc: a key appears twice in one batch")
        return self.d.tier.alloc(ns, parsed, self.id)

    def op_commit(self, ns: str, tokens: list, durability: str = "staged", atomic: bool = False,
                  keys: list | None = None, if_absent: bool = False,
                  name_prefix=None, name_by: str | None = None):
        self._opened(ns)
        if durability not in DURABILITIES:
            raise InvalidArgument(f"durability must be one of {', '.join(DURABILITIES)}, "
                                  f"not {durability!r}")
        toks = self._ints(tokens, "tokens")
        if keys is not None:
            if name_by is not None or name_prefix is not None:
                raise InvalidArgument("commit: give keys or name_by (content naming), not both")
            if len(keys) != len(toks):
                raise InvalidArgument(f"commit: {len(keys)} keys for {len(toks)} tokens; "
                                      "give one key per token")
            keys = [self._key(k) for k in keys]
        prefix = None
        if name_by is not None or name_prefix is not None:
            if name_by != CONTENT_DIGEST:
                raise InvalidArgument(f"commit: name_by must be {CONTENT_DIGEST!r}, "
                                      f"not {name_by!r}")
            if name_prefix is None:
                raise InvalidArgument("commit: name_by needs a name_prefix (may be empty)")
            prefix = as_key(name_prefix)
            # Every name is the prefix + 32 hex digits: check the longest one now.
            self._key(prefix + b"0" * 32)
        entries, stored, digests = self.d.tier.commit(ns, toks, self.id, atomic=atomic,
                                                      keys=keys, if_absent=if_absent,
                                                      name_prefix=prefix)
        if durability == "persisted":
            self.d.tier.wait_persisted(entries)
        if digests is not None:
            return {"digests": digests, "stored": stored if if_absent else None}
        return stored if if_absent else None

    def op_abort(self, ns: str, tokens: list):
        self._ns(ns)
        self.d.tier.abort(self._ints(tokens, "tokens"), self.id)
        return None

    def op_get(self, ns: str, keys: list, lease: bool = True):
        self._opened(ns)
        return self.d.tier.get(ns, [self._key(k) for k in keys], lease, self.id)

    def op_release(self, leases: list):
        self.d.tier.release(self._ints(leases, "leases"), self.id)
        return None

    def op_delete(self, ns: str, keys: list):
        self._ns(ns)
        return self.d.tier.delete(ns, [self._key(k) for k in keys])

    def op_contains(self, ns: str, keys: list):
        self._ns(ns)
        return self.d.tier.contains(ns, [self._key(k) for k in keys])

    def op_list(self, ns: str, prefix=b"", after=b"", limit: int = 1000):
        self._ns(ns)
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise InvalidArgument(f"list: limit must be 1..{LIST_LIMIT_MAX}")
        return self.d.tier.list(ns, as_key(prefix), as_key(after), limit)

    def op_stat(self, ns: str, key):
        self._ns(ns)
        return self.d.tier.stat(ns, self._key(key))

    def op_flush(self, ns: str | None = None):
        if ns is not None:
            self._ns(ns)
        self.d.tier.flush(ns)
        return None

    def op_persist(self, ns: str, keys: list):
        self._ns(ns)
        self.d.tier.persist(ns, [self._key(k) for k in keys])
        return None

    def op_status(self):
        return self.d.status(self.peer)

    def op_ns_create(self, ns: str, policy: dict):
        if not self.peer.is_admin:
            raise PermissionDenied("ns_create is for root or the daemon's own user")
        self.d.create_namespace(ns, policy)
        return None

    # ---- argument helpers --------------------------------------------------------------

    @staticmethod
    def _key(k) -> bytes:
        return check_key(as_key(k))

    @staticmethod
    def _ints(xs: list, what: str) -> list[int]:
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in xs):
            raise InvalidArgument(f"{what} must be non-negative integers")
        return xs


def handle(daemon, sock: socket.socket) -> None:
    """Listener callback: serve one connection to its end."""
    try:
        conn = Connection(daemon, sock)
    except OSError as e:
        log.info("connection dropped before it started: %s", e)
        sock.close()
        return
    conn.serve()
