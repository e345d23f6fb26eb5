"""The tierd wire protocol: control over a Unix socket, data in shared memory.

Framing
    Every message is a frame: a 4-byte little-endian length N, then N bytes of
    msgpack encoding one map. N is at most the negotiated max_frame (the
    daemon's [server] max_frame, 1 MiB by default); a larger length, or a body
    that is not a msgpack map, is a ProtocolError and the daemon closes that
    connection (other clients are unaffected).

Handshake (first frame each way)
    client: {"op": "hello", "v": PROTOCOL_VERSION, "client": "tierd-py/0.1.0"}
    daemon: {"ok": true, "v": 1, "server": "tierd/0.1.0", "max_frame": N,
             "page_size": 4096, "namespaces": [names this uid may use]}
      or    {"ok": false, "error": {"code": "PROTOCOL_ERROR", "message": ...}}
            (wrong version), then the connection closes.

Requests and responses
    request:  {"id": int >= 0, "op": str, "args": {...}}
    response: {"id": same, "ok": true, "result": ...}
          or  {"id": same, "ok": false, "error": {"code": str, "message": str}}
    Responses come in request order (one connection = one ordered stream).
    Error codes are the `code` of the classes in tierd.errors.
    A response whose result has "fd": true carries one file descriptor
    (SCM_RIGHTS) on the sendmsg that starts the frame.

Keys are msgpack bin (bytes); str is accepted and UTF-8 encoded; empty keys
and keys over 400 bytes are InvalidArgument. Namespaces are str. Offsets and
sizes are ints in bytes; offsets are into the namespace's arena, so alloc,
commit and get need open_ns on the connection first (the others do not).

Operations (args -> result); see OPS for the exact argument types:
    open_ns   {ns} -> {"ns", "arena_bytes", "page_size", "durable", "fd": true}
              + the arena memfd. Sent once per namespace per connection;
              PermissionDenied (and no fd) if this uid/gid may not use ns.
    alloc     {ns, items: [[key, nbytes] or [key, nbytes, itemsize], ...]}
              -> [{"token": int, "offset": int}, ...]
              itemsize (1..64) is a hint for dtype-aware compression.
              Arena pages for puts; the client writes the bytes at offset and
              then commits. Waits (backpressure) up to the daemon's
              alloc_timeout for dirty data to be flushed, then TierFull.
              key may be null: the object is named at commit (`keys`), for
              writers that learn the name from the bytes (content hashes).
    commit    {ns, tokens: [int], durability: "staged" | "persisted", atomic: bool,
               keys: [key], if_absent: bool}
              -> null, or with if_absent [bool stored, ...]
              Makes the allocated objects visible (DRAM tier, dirty). With
              "persisted" the reply waits until they are on NVMe and in the
              catalog (fdatasync'ed in durable namespaces). With atomic, the
              objects reach the catalog together, in one transaction (a
              checkpoint's manifest and its `latest` pointer).
              keys (one per token) names the objects, replacing the alloc
              keys. With if_absent an object whose key already exists is
              dropped instead (its pages freed, nothing written): stored
              false. For content-addressed keys, where the same key means
              the same bytes, that is deduplication.
              name_by: "xxh3-128" with name_prefix (instead of keys): the
              daemon names each object name_prefix + the 32 hex digits of
              the xxh3-128 of its bytes, read from the arena at commit; the
              same pass is the store's checksum, so the bytes are hashed once.
              -> {"digests": [hex, ...], "stored": [bool, ...] | null}
    abort     {ns, tokens: [int]} -> null      frees uncommitted allocations
    get       {ns, keys: [key], lease: bool}
              -> [{"offset", "size", "tier": "dram"|"nvme", "lease": int|null}
                  | null (missing), ...]
              NVMe hits are read into the arena (promotion) and verified
              first. With lease, the bytes stay put until release.
    release   {leases: [int]} -> null      idempotent: unknown/expired ids are ignored
    delete    {ns, keys: [key]} -> [bool existed, ...]
    contains  {ns, keys: [key]} -> [bool, ...]
    list      {ns, prefix: bytes, after: bytes, limit: 1..10000 (1000)}
              -> {"keys": [...], "more": bool}       keys > after, in byte order
    stat      {ns, key} -> {"size", "tier", "state", "checksum", "mtime_ns"}
    flush     {ns | null} -> null           waits until no dirty data remains
    persist   {ns, keys} -> null            waits until each key's current version is on
                                            NVMe and in the catalog; NotFound if absent
    status    {} -> the daemon's status document (tiers, namespaces, backlog)
    ns_create {ns, policy: {...}} -> null   admin only (root or the daemon's uid)
"""
from __future__ import annotations

import struct
from typing import Any, Iterator

import msgpack

from tierd.errors import ProtocolError

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<I")
DEFAULT_MAX_FRAME = 1 << 20
DURABILITIES = ("staged", "persisted")

# op -> {arg: (type or tuple of types, required)}. Both sides check against
# this table; anything else in "args" is an error naming the argument.
_KEY = (bytes, str)
CONTENT_DIGEST = "xxh3-128"   # commit's name_by: the content hash the daemon offers
OPS: dict[str, dict[str, tuple[Any, bool]]] = {
    "open_ns": {"ns": (str, True)},
    "alloc": {"ns": (str, True), "items": (list, True)},
    "commit": {"ns": (str, True), "tokens": (list, True), "durability": (str, False),
               "atomic": (bool, False), "keys": (list, False), "if_absent": (bool, False),
               "name_prefix": (_KEY, False), "name_by": (str, False)},
    "abort": {"ns": (str, True), "tokens": (list, True)},
    "get": {"ns": (str, True), "keys": (list, True), "lease": (bool, False)},
    "release": {"leases": (list, True)},
    "delete": {"ns": (str, True), "keys": (list, True)},
    "contains": {"ns": (str, True), "keys": (list, True)},
    "list": {"ns": (str, True), "prefix": (_KEY, False), "after": (_KEY, False),
             "limit": (int, False)},
    "stat": {"ns": (str, True), "key": (_KEY, True)},
    "flush": {"ns": ((str, type(None)), False)},
    "persist": {"ns": (str, True), "keys": (list, True)},
    "status": {},
    "ns_create": {"ns": (str, True), "policy": (dict, True)},
}
MAX_BATCH = 4096          # keys/items/tokens/leases in one request


def pack(msg: dict) -> bytes:
    """One frame: length header + msgpack body."""
    body = msgpack.packb(msg, use_bin_type=True)
    return HEADER.pack(len(body)) + body


def unpack_body(body: bytes) -> dict:
    try:
        msg = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except Exception as e:  # msgpack raises several types for garbage
        raise ProtocolError(f"frame is not valid msgpack: {type(e).__name__}: {e}") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"frame must be a map, got {type(msg).__name__}")
    return msg


class FrameReader:
    """Incremental frame decoder over a byte stream (bounded buffer)."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        assert max_frame > 0
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[dict]:
        """Append bytes; yield every complete message. ProtocolError on a bad frame."""
        self._buf += data
        while len(self._buf) >= HEADER.size:
            (n,) = HEADER.unpack_from(self._buf)
            if n > self.max_frame:
                raise ProtocolError(f"frame of {n} bytes exceeds max_frame {self.max_frame}")
            if len(self._buf) < HEADER.size + n:
                return
            body = bytes(self._buf[HEADER.size:HEADER.size + n])
            del self._buf[:HEADER.size + n]
            yield unpack_body(body)

    @property
    def pending(self) -> int:
        return len(self._buf)


def check_request(msg: dict) -> tuple[int, str, dict]:
    """Validate a request's shape: (id, op, args), or ProtocolError/InvalidArgument.

    A request whose id cannot be read is a ProtocolError (no reply can name
    it); anything wrong after that is InvalidArgument for that request.
    """
    from tierd.errors import InvalidArgument
    rid = msg.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool) or rid < 0 or rid >= 2**63:
        raise ProtocolError(f"request id must be a non-negative integer, got {rid!r}")
    op = msg.get("op")
    if op not in OPS:
        raise InvalidArgument(f"unknown op {op!r}; known: {', '.join(sorted(OPS))}")
    args = msg.get("args", {})
    if not isinstance(args, dict):
        raise InvalidArgument(f"{op}: args must be a map")
    spec = OPS[op]
    for name in args:
        if name not in spec:
            raise InvalidArgument(f"{op}: unknown argument {name!r}")
    for name, (typ, required) in spec.items():
        if name not in args:
            if required:
                raise InvalidArgument(f"{op}: missing argument {name!r}")
            continue
        val = args[name]
        if not isinstance(val, typ) or (typ is int and isinstance(val, bool)):
            raise InvalidArgument(f"{op}: argument {name!r} has the wrong type "
                                  f"({type(val).__name__})")
        if isinstance(val, list) and len(val) > MAX_BATCH:
            raise InvalidArgument(f"{op}: {name} holds {len(val)} entries; at most {MAX_BATCH}")
    return rid, op, args


def as_key(k) -> bytes:
    """A wire key as bytes; InvalidArgument for anything else."""
    from tierd.errors import InvalidArgument
    if isinstance(k, bytes):
        return k
    if isinstance(k, str):
        return k.encode("utf-8")
    raise InvalidArgument(f"key must be bytes or str, not {type(k).__name__}")


def error_reply(rid: int | None, exc: Exception) -> dict:
    code = getattr(exc, "code", "INTERNAL")
    msg = {"ok": False, "error": {"code": code, "message": str(exc)}}
    if rid is not None:
        msg["id"] = rid
    return msg
