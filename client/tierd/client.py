"""The thin client of the tierd daemon: control over a Unix socket, data in shared memory.

    import tierd
    with tierd.connect() as c:
        c.put("default", "w/layer0", weights)            # numpy, bytes, memoryview
        with c.get("default", "w/layer0") as lease:      # zero-copy, read-only
            arr = lease.array.view(np.float32)

The wire contract is tierd.protocol. One connection per Client; requests are
serialized under one lock, so a Client may be shared by threads. Data never
crosses the socket: puts copy into the namespace's arena (a memfd the daemon
sends once per namespace) and gets return views of it, pinned by a lease
until released.

If the daemon restarts, the next call reconnects (backoff 0.05 s doubling to
1 s, up to `timeout`) and is retried once as a whole; leases taken before
the restart keep their (old) memory readable, and releasing them is a no-op.
"""
from __future__ import annotations

import concurrent.futures
import operator
import os
import socket
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from tierd import protocol
from tierd.arena import Arena, as_bytes_array
from tierd.reservation import Reservation
from tierd.errors import (
    DaemonUnavailable,
    InvalidArgument,
    LeaseExpired,
    NotFound,
    ProtocolError,
    TierdError,
    error_for_code,
)

CLIENT_NAME = "tierd-py/0.1.0"
START_HINT = "start it with `tierd serve` or `systemctl start tierd`"
LIST_PAGE = 1000
_RECV_BYTES = 65536
_MAX_FDS = 4
# Bytes of a frame kept free for the map around the batch (op, id, ns, ...).
_FRAME_SLACK = 1024
# msgpack overhead per batch entry (array headers, ints, bin headers), generous.
_ITEM_OVERHEAD = 24


def default_socket_candidates() -> list[str]:
    """The socket paths connect() tries, in order."""
    paths = []
    env = os.environ.get("TIERD_SOCKET")
    if env:
        paths.append(env)
    run = os.environ.get("XDG_RUNTIME_DIR")
    if run:
        paths.append(os.path.join(run, "tierd", "tierd.sock"))
    paths.append(os.path.join("/tmp", f"tierd-{os.getuid()}", "tierd.sock"))
    paths.append("/run/tierd/tierd.sock")
    return paths


def resolve_socket(socket_path: str | None = None) -> str:
    if socket_path is not None:
        return os.fspath(socket_path)
    tried = default_socket_candidates()
    for p in tried:
        if os.path.exists(p):
            return p
    raise DaemonUnavailable(f"no tierd socket found (tried {', '.join(tried)}); {START_HINT}")


def connect(socket_path: str | None = None, *, timeout: float = 30.0,
            reconnect: bool = True) -> "Client":
    """Connect to the daemon and do the handshake.

    socket_path: default $TIERD_SOCKET, else $XDG_RUNTIME_DIR/tierd/tierd.sock,
    else /tmp/tierd-$UID/tierd.sock, else /run/tierd/tierd.sock (the first
    that exists). timeout bounds every blocking call (and a reconnect).
    DaemonUnavailable if nothing answers.
    """
    return Client(resolve_socket(socket_path), timeout=timeout, reconnect=reconnect)


class _ConnectionLost(Exception):
    """The socket broke (daemon gone or restarted); retried once after a reconnect."""

    def __init__(self, gen: int, why: str) -> None:
        super().__init__(why)
        self.gen = gen


def _checked_sizes(sizes, itemsizes) -> tuple[list[int], list[int]]:
    """(sizes, itemsizes) of a reservation as ints (numpy ints too), or InvalidArgument."""
    sizes = list(sizes)
    itemsizes = [1] * len(sizes) if itemsizes is None else list(itemsizes)
    if len(itemsizes) != len(sizes):
        raise InvalidArgument("reserve: one itemsize per size")
    out_s, out_i = [], []
    for n, (size, isz) in enumerate(zip(sizes, itemsizes)):
        try:
            size, isz = operator.index(size), operator.index(isz)
        except TypeError:
            size = isz = -1
        if size < 0 or not 1 <= isz <= 64:
            raise InvalidArgument(f"reserve: object {n}: size must be an int >= 0 and "
                                  f"itemsize 1..64 (got {sizes[n]!r}, {itemsizes[n]!r})")
        out_s.append(size)
        out_i.append(isz)
    return out_s, out_i


def _key(k) -> bytes:
    return protocol.as_key(k)


def _show(ns: str, key: bytes) -> str:
    return f"{ns}/{key.decode('utf-8', 'backslashreplace')}"


class Lease:
    """Bytes of one object, pinned in the DRAM tier until released.

    `.array` is a read-only numpy uint8 view into the shared arena (no copy);
    `.tier` is where the object was found ("dram" or "nvme": promoted). Use as
    a context manager, or call release(). After release, `.array` and
    `.tobytes()` raise LeaseExpired.
    """

    __slots__ = ("ns", "key", "tier", "size", "_array", "_lease_id", "_gen", "_client",
                 "_released", "__weakref__")

    def __init__(self, client: "Client", gen: int, ns: str, key: bytes, array: np.ndarray,
                 tier: str, lease_id: int | None) -> None:
        self._client, self._gen = client, gen
        self.ns, self.key, self.tier, self.size = ns, key, tier, int(array.size)
        self._array, self._lease_id = array, lease_id
        self._released = False

    @property
    def array(self) -> np.ndarray:
        if self._released:
            raise LeaseExpired(f"the lease on {_show(self.ns, self.key)} was released; "
                               "get the object again")
        return self._array

    @property
    def released(self) -> bool:
        return self._released

    def tobytes(self) -> bytes:
        return self.array.tobytes()

    def __len__(self) -> int:
        return self.size

    def release(self) -> None:
        """Unpin the bytes (idempotent). A lease of a connection that ended is a no-op."""
        if self._released:
            return
        self._released = True
        self._array = None
        client, self._client = self._client, None
        if self._lease_id is not None and client is not None:
            client._release_leases([self._lease_id], self._gen)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        # Never a request from the garbage collector (it may run inside one):
        # queue the id; the next request releases it first.
        try:
            if not self._released and self._lease_id is not None and self._client is not None:
                self._client._orphans.append((self._gen, self._lease_id))
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "released" if self._released else f"{self.size} bytes, {self.tier}"
        return f"<tierd.Lease {_show(self.ns, self.key)} ({state})>"


class Client:
    """A connection to the tierd daemon. See tierd.connect()."""

    def __init__(self, socket_path: str, *, timeout: float = 30.0, reconnect: bool = True) -> None:
        if not timeout or timeout <= 0:
            raise InvalidArgument(f"timeout must be > 0 seconds, got {timeout!r}")
        self.socket_path = socket_path
        self.timeout = float(timeout)
        self.reconnect = reconnect
        self._lock = threading.RLock()
        self._sock: socket.socket | None = None
        self._reader: protocol.FrameReader | None = None
        self._msgs: deque = deque()
        self._fds: deque = deque()
        self._next_id = 0
        self._gen = 0                     # bumped on every (re)connect
        self._arenas: dict[str, Arena] = {}
        self._orphans: list[tuple[int, int]] = []
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False
        self.hello: dict = {}
        self.max_frame = protocol.DEFAULT_MAX_FRAME
        with self._lock:
            self._connect_once()

    # ---- connection -------------------------------------------------------------

    def _unavailable(self, why: str) -> DaemonUnavailable:
        return DaemonUnavailable(f"no tierd daemon answers at {self.socket_path} ({why}); "
                                 f"{START_HINT}")

    def _connect_once(self) -> None:
        """Open the socket and handshake; DaemonUnavailable/ProtocolError on failure."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.socket_path)
        except socket.timeout:
            s.close()
            raise self._unavailable(f"connect timed out after {self.timeout:g} s") from None
        except OSError as e:
            s.close()
            raise self._unavailable(e.strerror or str(e)) from None
        self._drop_connection()
        self._sock = s
        self._reader = protocol.FrameReader(protocol.DEFAULT_MAX_FRAME)
        self._gen += 1
        try:
            self._send({"op": "hello", "v": protocol.PROTOCOL_VERSION, "client": CLIENT_NAME})
            reply = self._recv_msg()
        except _ConnectionLost as e:
            self._drop_connection()
            raise self._unavailable(f"connection closed during the handshake: {e}") from None
        except BaseException:
            self._drop_connection()
            raise
        if not reply.get("ok"):
            self._drop_connection()
            err = reply.get("error") or {}
            raise error_for_code(err.get("code", "PROTOCOL_ERROR"))(
                f"handshake refused: {err.get('message', reply)}")
        if reply.get("v") != protocol.PROTOCOL_VERSION:
            self._drop_connection()
            raise ProtocolError(f"daemon speaks protocol v{reply.get('v')!r}, this client "
                                f"v{protocol.PROTOCOL_VERSION}; upgrade the older side")
        mf = reply.get("max_frame", protocol.DEFAULT_MAX_FRAME)
        if not isinstance(mf, int) or mf < 4096:
            self._drop_connection()
            raise ProtocolError(f"handshake: bad max_frame {mf!r}")
        self.max_frame = mf
        self._reader.max_frame = mf
        self.hello = reply

    def _drop_connection(self) -> None:
        """Close the socket and forget per-connection state (arenas, queued fds)."""
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._reader = None
        self._msgs.clear()
        while self._fds:
            try:
                os.close(self._fds.popleft())
            except OSError:
                pass
        # Forget the arenas: a restarted daemon has new ones, opened again on first
        # use. The old mappings are not closed here: Leases (and a put in another
        # thread) may still use them; each is unmapped when its last user is gone.
        self._arenas.clear()

    def _reconnect(self, failed_gen: int) -> None:
        """Reconnect with backoff up to `timeout` (unless another thread already did)."""
        with self._lock:
            if self._closed:
                raise DaemonUnavailable("the client is closed")
            if self._sock is not None and self._gen != failed_gen:
                return
            self._drop_connection()
            deadline = time.monotonic() + self.timeout
            delay = 0.05
            last: Exception | None = None
            while True:
                try:
                    self._connect_once()
                    return
                except DaemonUnavailable as e:
                    last = e
                if time.monotonic() + delay > deadline:
                    break
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            raise DaemonUnavailable(f"lost the connection to tierd at {self.socket_path} and "
                                    f"could not reconnect within {self.timeout:g} s ({last}); "
                                    f"{START_HINT}")

    def _retrying(self, fn: Callable[[], Any]) -> Any:
        """Run a whole operation; on a broken connection reconnect and run it once more."""
        try:
            return fn()
        except _ConnectionLost as e:
            if not self.reconnect:
                raise DaemonUnavailable(f"lost the connection to tierd at {self.socket_path} "
                                        f"({e}); reconnect is off") from None
            self._reconnect(e.gen)
        try:
            return fn()
        except _ConnectionLost as e:
            raise DaemonUnavailable(f"lost the connection to tierd at {self.socket_path} "
                                    f"again after reconnecting ({e})") from None

    # ---- framing ----------------------------------------------------------------

    def _send(self, msg: dict) -> None:
        data = protocol.pack(msg)
        if len(data) - protocol.HEADER.size > self.max_frame:
            raise InvalidArgument(f"{msg.get('op')}: request of {len(data)} bytes exceeds the "
                                  f"daemon's max_frame of {self.max_frame} bytes")
        gen = self._gen
        try:
            self._sock.sendall(data)
        except socket.timeout:
            self._drop_connection()
            raise DaemonUnavailable(f"tierd at {self.socket_path} did not accept a request "
                                    f"within {self.timeout:g} s") from None
        except OSError as e:
            self._drop_connection()
            raise _ConnectionLost(gen, f"send failed: {e.strerror or e}") from None

    def _recv_msg(self) -> dict:
        gen = self._gen
        while not self._msgs:
            try:
                data, fds, flags, _ = socket.recv_fds(self._sock, _RECV_BYTES, _MAX_FDS)
            except socket.timeout:
                self._drop_connection()
                raise DaemonUnavailable(f"tierd at {self.socket_path} did not reply within "
                                        f"{self.timeout:g} s") from None
            except OSError as e:
                self._drop_connection()
                raise _ConnectionLost(gen, f"receive failed: {e.strerror or e}") from None
            self._fds.extend(fds)
            if flags & getattr(socket, "MSG_CTRUNC", 0):
                self._drop_connection()
                raise ProtocolError("a file descriptor from the daemon was truncated "
                                    "(more than one fd per frame?)")
            if not data:
                self._drop_connection()
                raise _ConnectionLost(gen, "the daemon closed the connection")
            try:
                self._msgs.extend(self._reader.feed(data))
            except ProtocolError:
                self._drop_connection()
                raise
        return self._msgs.popleft()

    def _exchange(self, op: str, args: dict, gen: int | None = None) -> tuple[Any, int | None]:
        """One request/response under the lock: (result, fd or None). Raises the reply's error."""
        with self._lock:
            if self._closed:
                raise DaemonUnavailable("the client is closed")
            if self._sock is None or (gen is not None and gen != self._gen):
                # Broken earlier, or this operation began on a connection that is gone.
                raise _ConnectionLost(gen if gen is not None else self._gen,
                                      "not connected (daemon restarted?)")
            if self._orphans:
                self._release_orphans()
            rid = self._next_id
            self._next_id += 1
            self._send({"id": rid, "op": op, "args": args})
            reply = self._recv_msg()
            if reply.get("id") != rid:
                self._drop_connection()
                raise ProtocolError(f"{op}: reply id {reply.get('id')!r} does not match request "
                                    f"id {rid} (responses must come in request order)")
            if not reply.get("ok"):
                err = reply.get("error") or {}
                if not isinstance(err, dict):
                    err = {"message": repr(err)}
                raise error_for_code(err.get("code", "INTERNAL"))(
                    err.get("message") or f"{op} failed ({err.get('code')})")
            result = reply.get("result")
            fd = None
            if isinstance(result, dict) and result.get("fd") is True:
                if not self._fds:
                    self._drop_connection()
                    raise ProtocolError(f"{op}: the reply announces a file descriptor but "
                                        "none arrived")
                fd = self._fds.popleft()
            return result, fd

    def _call(self, op: str, args: dict, gen: int | None = None) -> Any:
        result, fd = self._exchange(op, args, gen)
        if fd is not None:
            os.close(fd)  # not expected for this op
        return result

    def _release_orphans(self) -> None:
        orphans, self._orphans[:] = list(self._orphans), []
        ids = [lid for g, lid in orphans if g == self._gen]
        for i in range(0, len(ids), protocol.MAX_BATCH):
            rid = self._next_id
            self._next_id += 1
            self._send({"id": rid, "op": "release", "args": {"leases": ids[i:i + protocol.MAX_BATCH]}})
            self._recv_msg()  # errors (an expired lease) do not matter here

    def _release_leases(self, ids: list[int], gen: int) -> None:
        """Release leases of connection `gen`; a no-op if that connection is gone."""
        with self._lock:
            if self._closed or self._sock is None or gen != self._gen:
                return
            try:
                for i in range(0, len(ids), protocol.MAX_BATCH):
                    self._call("release", {"leases": ids[i:i + protocol.MAX_BATCH]}, gen)
            except (_ConnectionLost, LeaseExpired):
                pass  # a dead connection released everything; an expired lease is gone

    # ---- batching -----------------------------------------------------------------

    def _chunks(self, sizes: list[int], byte_cap: list[int] | None = None,
                cap: int | None = None) -> Iterator[tuple[int, int]]:
        """Split entries [0, n) into (start, end) runs whose frames fit and <= MAX_BATCH."""
        budget = self.max_frame - _FRAME_SLACK
        n = len(sizes)
        i = 0
        while i < n:
            j, frame, data = i, 0, 0
            while j < n and j - i < protocol.MAX_BATCH:
                f = sizes[j] + _ITEM_OVERHEAD
                d = byte_cap[j] if byte_cap is not None else 0
                if j > i and (frame + f > budget or (cap is not None and data + d > cap)):
                    break
                frame += f
                data += d
                j += 1
            yield i, j
            i = j

    # ---- namespaces & arenas -----------------------------------------------------

    @property
    def namespaces(self) -> list[str]:
        """Namespaces this uid may use (from the handshake)."""
        return list(self.hello.get("namespaces") or [])

    def _arena(self, ns: str, gen: int) -> Arena:
        with self._lock:
            a = self._arenas.get(ns)
            if a is not None and gen == self._gen:
                return a
            result, fd = self._exchange("open_ns", {"ns": ns}, gen)
            if fd is None:
                raise ProtocolError(f"open_ns {ns!r}: the reply carries no arena file descriptor")
            try:
                a = Arena(ns, fd, result.get("arena_bytes"), result.get("page_size", 4096),
                          result.get("durable", False))
            except OSError as e:
                raise TierdError(f"cannot map the arena of namespace {ns!r}: {e}") from None
            self._arenas[ns] = a
            return a

    def _stitch(self, ns: str, pieces: list[tuple["Lease", int]]) -> np.ndarray:
        """Arena.stitch of the first `length` bytes of each lease, in order."""
        gen = pieces[0][0]._gen
        with self._lock:
            a = self._arenas.get(ns)
            if a is None or gen != self._gen or any(ls._gen != gen for ls, _ in pieces):
                raise DaemonUnavailable("the connection to tierd was lost while the snapshot "
                                        "was opened; open it again")
        return a.stitch([ls.array[:n] for ls, n in pieces])

    def namespace_info(self, ns: str) -> dict:
        """{"ns", "arena_bytes", "page_size", "durable"} of a namespace (opens it)."""
        def op():
            a = self._arena(ns, self._gen)
            return {"ns": ns, "arena_bytes": a.arena_bytes, "page_size": a.page_size,
                    "durable": a.durable}
        return self._retrying(op)

    def _expect_writes(self, ns: str) -> None:
        """A writer announces itself (a checkpoint manager at open): map the
        arena writable in the background now, long before its first save,
        instead of during it (Arena.populate)."""
        self._retrying(lambda: self._arena(ns, self._gen)).populate()

    # ---- puts ---------------------------------------------------------------------

    def put(self, ns: str, key, data, durability: str = "staged") -> None:
        """Store one object: alloc, copy into the arena, commit.

        durability "staged" returns once the object is in the DRAM tier;
        "persisted" once it is on NVMe (and synced, in durable namespaces).
        """
        self.put_many(ns, [(key, data)], durability=durability)

    def put_many(self, ns: str, items, durability: str = "staged", *,
                 atomic: bool = False) -> None:
        """Store many objects: items is a dict or an iterable of (key, data) pairs,
        or (key, data, itemsize) triples (itemsize: a hint for dtype-aware
        compression in namespaces that use it).

        atomic: the objects reach the NVMe catalog together, in one
        transaction; they must then fit in one request (InvalidArgument if not).
        """
        if durability not in protocol.DURABILITIES:
            raise InvalidArgument(f"durability must be one of {', '.join(protocol.DURABILITIES)}, "
                                  f"not {durability!r}")
        if isinstance(items, dict):
            items = items.items()
        prepared = []
        for item in items:
            try:
                k, d, *rest = item
                itemsize = int(rest[0]) if rest else 1
                if len(rest) > 1 or not 1 <= itemsize <= 64:
                    raise ValueError
            except (TypeError, ValueError):
                raise InvalidArgument("put_many: items must be (key, data) pairs or "
                                      "(key, data, itemsize 1..64) triples") from None
            prepared.append((_key(k), as_bytes_array(d), itemsize))
        if not prepared:
            return
        self._retrying(lambda: self._put_batches(ns, prepared, durability, atomic))

    def _put_batches(self, ns: str, prepared: list, durability: str, atomic: bool = False) -> None:
        gen = self._gen
        arena = self._arena(ns, gen)
        sizes = [len(k) + 12 for k, _, _ in prepared]
        nbytes = [int(a.size) for _, a, _ in prepared]
        # Keep one batch well under the arena so a large put_many streams through
        # the tier (the flusher drains earlier batches) instead of hitting TierFull.
        cap = max(arena.arena_bytes // 4, 1)
        chunks = list(self._chunks(sizes, nbytes, cap))
        if atomic and len(chunks) > 1:
            raise InvalidArgument(
                f"an atomic put of {len(prepared)} objects ({sum(nbytes)} bytes) does not fit in "
                f"one request (a quarter of the {arena.arena_bytes}-byte arena, "
                f"{protocol.MAX_BATCH} objects, max_frame); split it or raise dram_bytes")
        for i, j in chunks:
            batch = prepared[i:j]
            r = self._reserve(ns, [int(a.size) for _, a, _ in batch],
                              [isz for _, _, isz in batch], gen, keys=[k for k, _, _ in batch])
            try:
                for (_, a, _), v in zip(batch, r.views):
                    v[...] = a
                r._commit(None, durability, False, atomic)
            except _ConnectionLost:
                raise  # the daemon frees allocations of a connection that ends
            except BaseException:
                r.abort()
                raise

    def _reserve(self, ns: str, sizes: list[int], itemsizes: list[int] | None, gen: int,
                 keys: list[bytes] | None = None) -> Reservation:
        """One alloc request; raises _ConnectionLost (for _retrying callers)."""
        arena = self._arena(ns, gen)
        sizes, itemsizes = _checked_sizes(sizes, itemsizes)
        items = []
        for n, (size, isz) in enumerate(zip(sizes, itemsizes)):
            k = keys[n] if keys is not None else None
            items.append([k, size] if isz == 1 else [k, size, isz])
        slots = self._call("alloc", {"ns": ns, "items": items}, gen)
        if not isinstance(slots, list) or len(slots) != len(items):
            raise ProtocolError(f"alloc: expected {len(items)} slots, got {slots!r}")
        tokens = [s.get("token") for s in slots]
        try:
            views = [arena.slice(s["offset"], size) for s, size in zip(slots, sizes)]
        except BaseException:
            self._abort(ns, tokens, gen)
            raise
        return Reservation(self, ns, gen, tokens, views)

    def reserve(self, ns: str, sizes: list[int], itemsizes: list[int] | None = None) -> Reservation:
        """Arena space for len(sizes) objects to be written in place and named
        at commit (see tierd.reservation). One request: the objects must fit in
        a quarter of the namespace's arena and in protocol.MAX_BATCH.
        """
        sizes, itemsizes = _checked_sizes(sizes, itemsizes)

        def op():
            arena = self._arena(ns, self._gen)
            total = sum(sizes)
            if len(sizes) > protocol.MAX_BATCH or total > max(arena.arena_bytes // 4, 1):
                raise InvalidArgument(
                    f"reserve: {len(sizes)} objects of {total} bytes do not fit in one request "
                    f"(at most {protocol.MAX_BATCH} objects and a quarter of the "
                    f"{arena.arena_bytes}-byte arena); reserve in smaller batches")
            return self._reserve(ns, sizes, itemsizes, self._gen)
        return self._retrying(op)

    def _abort(self, ns: str, tokens: list, gen: int) -> None:
        try:
            self._call("abort", {"ns": ns, "tokens": tokens}, gen)
        except (TierdError, _ConnectionLost):
            pass  # best effort: the original error is the one to report

    # ---- gets ---------------------------------------------------------------------

    def get(self, ns: str, key) -> Lease:
        """A Lease on one object (zero-copy, read-only). NotFound if absent."""
        return self.get_many(ns, [key])[0]

    def get_many(self, ns: str, keys: Iterable) -> list[Lease]:
        """Leases on many objects, in one request (per MAX_BATCH/max_frame).

        NotFound listing every missing key (no leases are kept then).
        """
        bkeys = [_key(k) for k in keys]
        if not bkeys:
            return []
        return self._retrying(lambda: self._get_batches(ns, bkeys))

    def _get_batches(self, ns: str, bkeys: list[bytes]) -> list[Lease]:
        gen = self._gen
        arena = self._arena(ns, gen)
        leases: list[Lease] = []
        missing: list[bytes] = []
        try:
            for i, j in self._chunks([len(k) for k in bkeys]):
                res = self._call("get", {"ns": ns, "keys": bkeys[i:j], "lease": True}, gen)
                if not isinstance(res, list) or len(res) != j - i:
                    raise ProtocolError(f"get: expected {j - i} results, got {res!r}")
                for k, r in zip(bkeys[i:j], res):
                    if r is None:
                        missing.append(k)
                        continue
                    view = arena.read_view(r["offset"], r["size"])
                    leases.append(Lease(self, gen, ns, k, view, r.get("tier", "dram"),
                                        r.get("lease")))
            if missing:
                shown = ", ".join(repr(k) for k in missing[:20])
                more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
                raise NotFound(f"no object in namespace {ns!r} for key"
                               f"{'s' if len(missing) > 1 else ''} {shown}{more}")
        except BaseException:
            ids = [ls._lease_id for ls in leases if ls._lease_id is not None]
            for ls in leases:
                ls._released = True
                ls._client = None
            if ids:
                self._release_leases(ids, gen)
            raise
        return leases

    def prefetch(self, ns: str, keys: Iterable) -> concurrent.futures.Future:
        """Bring objects into the DRAM tier in the background (no leases).

        Returns a Future resolving to the list of tiers where each key was
        found ("nvme" means it was promoted); errors surface on .result().
        """
        bkeys = [_key(k) for k in keys]
        with self._lock:
            if self._closed:
                raise DaemonUnavailable("the client is closed")
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=2, thread_name_prefix="tierd-prefetch")
            return self._executor.submit(self._prefetch, ns, bkeys)

    def _prefetch(self, ns: str, bkeys: list[bytes]) -> list[str]:
        def op():
            gen = self._gen
            self._arena(ns, gen)  # the daemon reads NVMe hits into the arena: open it first
            tiers, missing = [], []
            for i, j in self._chunks([len(k) for k in bkeys]):
                res = self._call("get", {"ns": ns, "keys": bkeys[i:j], "lease": False}, gen)
                for k, r in zip(bkeys[i:j], res):
                    if r is None:
                        missing.append(k)
                    else:
                        tiers.append(r.get("tier"))
            if missing:
                raise NotFound(f"prefetch: no object in namespace {ns!r} for key(s) "
                               f"{', '.join(repr(k) for k in missing[:20])}")
            return tiers
        return self._retrying(op)

    # ---- other ops ----------------------------------------------------------------

    def _batched(self, op: str, ns: str, bkeys: list[bytes]) -> list:
        out = []
        for i, j in self._chunks([len(k) for k in bkeys]):
            res = self._call(op, {"ns": ns, "keys": bkeys[i:j]})
            if not isinstance(res, list) or len(res) != j - i:
                raise ProtocolError(f"{op}: expected {j - i} results, got {res!r}")
            out.extend(bool(r) for r in res)
        return out

    def delete(self, ns: str, key) -> None:
        """Delete one object; NotFound if there was none."""
        k = _key(key)
        if not self.delete_many(ns, [k])[0]:
            raise NotFound(f"no object in namespace {ns!r} for key {k!r}")

    def delete_many(self, ns: str, keys: Iterable) -> list[bool]:
        """Delete objects; for each key whether it existed."""
        bkeys = [_key(k) for k in keys]
        return self._retrying(lambda: self._batched("delete", ns, bkeys)) if bkeys else []

    def contains(self, ns: str, key) -> bool:
        return self.contains_many(ns, [key])[0]

    def contains_many(self, ns: str, keys: Iterable) -> list[bool]:
        bkeys = [_key(k) for k in keys]
        return self._retrying(lambda: self._batched("contains", ns, bkeys)) if bkeys else []

    def list(self, ns: str, prefix=b"", *, page: int = LIST_PAGE) -> Iterator[bytes]:
        """Keys of a namespace with this prefix, in order (fetched a page at a time)."""
        pfx = _key(prefix)
        if not isinstance(page, int) or page < 1:
            raise InvalidArgument(f"page must be a positive int, got {page!r}")
        page = min(page, protocol.MAX_BATCH)

        def gen() -> Iterator[bytes]:
            after: bytes | None = None
            while True:
                args = {"ns": ns, "prefix": pfx, "limit": page}
                if after is not None:
                    args["after"] = after
                res = self._retrying(lambda: self._call("list", args))
                keys = res.get("keys") if isinstance(res, dict) else None
                if not isinstance(keys, list):
                    raise ProtocolError(f"list: bad reply {res!r}")
                yield from keys
                if not res.get("more"):
                    return
                if not keys:
                    raise ProtocolError("list: reply says more but returned no keys")
                after = keys[-1]
        return gen()

    def stat(self, ns: str, key) -> dict:
        """{"size", "tier", "state", "checksum", "mtime_ns"} of one object; NotFound if absent."""
        k = _key(key)
        return self._retrying(lambda: self._call("stat", {"ns": ns, "key": k}))

    def flush(self, ns: str | None = None) -> None:
        """Wait until no dirty data remains (in ns, or everywhere)."""
        self._retrying(lambda: self._call("flush", {"ns": ns}))

    def persist(self, ns: str, keys: Iterable) -> None:
        """Wait until the objects (staged earlier) are on NVMe and in the catalog."""
        ks = [_key(k) for k in keys]
        for i in range(0, len(ks), protocol.MAX_BATCH):
            part = ks[i:i + protocol.MAX_BATCH]
            self._retrying(lambda: self._call("persist", {"ns": ns, "keys": part}))

    def checkpoints(self, run: str, keep_last: int = 3, *, ns: str = "default",
                    chunk_bytes: int = 16 << 20, readonly: bool = False,
                    copy_threads: int | None = None):
        """A CheckpointManager for one training run (see tierd.checkpoint).

        One writer per run; readers pass readonly=True. copy_threads: threads
        that copy tensors into shared memory (default: half the cores, 2..8)."""
        from tierd.checkpoint import CheckpointManager
        return CheckpointManager(self, run, keep_last=keep_last, ns=ns, chunk_bytes=chunk_bytes,
                                 readonly=readonly, copy_threads=copy_threads)

    def status(self) -> dict:
        """The daemon's status document (tiers, namespaces, backlog)."""
        return self._retrying(lambda: self._call("status", {}))

    def ns_create(self, ns: str, policy: dict) -> None:
        """Create a namespace (admin only). Not retried after a reconnect."""
        try:
            self._call("ns_create", {"ns": ns, "policy": dict(policy)})
        except _ConnectionLost as e:
            raise DaemonUnavailable(f"lost the connection to tierd at {self.socket_path} "
                                    f"during ns_create ({e}); check whether it happened") from None

    # ---- lifetime -----------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (the daemon drops this connection's leases)."""
        ex = None
        with self._lock:
            if self._closed:
                return
            self._closed = True
            arenas = list(self._arenas.values())
            self._drop_connection()
            ex, self._executor = self._executor, None
        # Unmap now rather than whenever the garbage collector gets to it: an
        # arena whose daemon has exited is freed only when its last mapping
        # goes, and freeing a few GiB of shared memory took ~0.5 s here, paid
        # by whatever call happened to trigger the collection. A mapping
        # that views still use (a lease's array, a snapshot) stays until
        # they are gone.
        for a in arenas:
            a.close()
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self._sock else "disconnected")
        return f"<tierd.Client {self.socket_path} ({state})>"
