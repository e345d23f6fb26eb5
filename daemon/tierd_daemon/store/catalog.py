"""The LMDB catalog: (namespace, key) -> where the bytes are and how to check them.

Only the store (inside the daemon) opens it: one writer, many readers.
A record is a fixed little-endian header followed by its extents:

    u8 version | u8 encoding | u16 flags | u32 n_extents
    u64 logical_size | u64 stored_size | u64 checksum (xxh3-64 of the logical bytes)
    u64 mtime_ns | n_extents x (u16 file, u16 pad, u32 npages, u64 page)

A record is written only after its data is on disk (invariant 1); a whole
batch of puts/deletes commits in one LMDB transaction.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Iterable, Iterator

import lmdb

from tierd.errors import InvalidArgument
from tierd_daemon.store.allocator import Extent

RECORD_VERSION = 1
ENC_RAW = 0
ENC_ZSTD = 1
ENC_GROUPED = 2   # byte planes per element, each zstd'ed or raw (store/grouped.py)
ENCODINGS = {ENC_RAW: "raw", ENC_ZSTD: "zstd", ENC_GROUPED: "grouped"}

# LMDB's default key limit is 511 bytes; the catalog key is ns + NUL + key and
# namespace names are at most 64 bytes.
MAX_KEY_BYTES = 400

_HEADER = struct.Struct("<BBHIQQQQ")
_EXTENT = struct.Struct("<HHIQ")


@dataclass(frozen=True)
class Record:
    encoding: int
    logical_size: int
    stored_size: int
    checksum: int
    mtime_ns: int
    extents: tuple[Extent, ...]
    flags: int = 0

    @property
    def npages(self) -> int:
        return sum(e.npages for e in self.extents)

    def pack(self) -> bytes:
        head = _HEADER.pack(RECORD_VERSION, self.encoding, self.flags, len(self.extents),
                            self.logical_size, self.stored_size, self.checksum, self.mtime_ns)
        return head + b"".join(_EXTENT.pack(e.file, 0, e.npages, e.page) for e in self.extents)

    @classmethod
    def unpack(cls, buf: bytes) -> "Record":
        """Decode a record; ValueError says what is wrong with a damaged one."""
        buf = bytes(buf)
        if len(buf) < _HEADER.size:
            raise ValueError(f"record too short ({len(buf)} bytes)")
        ver, enc, flags, n, lsize, ssize, csum, mtime = _HEADER.unpack_from(buf)
        if ver != RECORD_VERSION:
            raise ValueError(f"unknown record version {ver}")
        if enc not in ENCODINGS:
            raise ValueError(f"unknown encoding {enc}")
        if len(buf) != _HEADER.size + n * _EXTENT.size:
            raise ValueError(f"record length {len(buf)} does not match {n} extents")
        exts = []
        for i in range(n):
            f, _pad, npages, page = _EXTENT.unpack_from(buf, _HEADER.size + i * _EXTENT.size)
            exts.append(Extent(f, page, npages))
        return cls(enc, lsize, ssize, csum, mtime, tuple(exts), flags)


def check_key(key: bytes | str) -> bytes:
    """A valid object key as bytes (str is UTF-8); InvalidArgument otherwise.

    The one place keys are validated: the store and the daemon's protocol
    layer both call it."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    elif isinstance(key, (bytearray, memoryview)):
        key = bytes(key)
    elif not isinstance(key, bytes):
        raise InvalidArgument(f"key must be bytes or str, not {type(key).__name__}")
    if not key:
        raise InvalidArgument("key must not be empty")
    if len(key) > MAX_KEY_BYTES:
        raise InvalidArgument(f"key of {len(key)} bytes exceeds the limit of {MAX_KEY_BYTES}")
    return key


def encode_key(ns: str, key: bytes | str) -> bytes:
    return ns.encode() + b"\0" + check_key(key)


def decode_key(ckey: bytes) -> tuple[str, bytes]:
    ns, _, key = bytes(ckey).partition(b"\0")
    return ns.decode(), key


class Catalog:
    def __init__(self, path: str, map_size: int) -> None:
        self.path = path
        # sync/metasync on: a committed transaction is durable (invariant 1's
        # second half). readahead off: the catalog is random-access.
        self.env = lmdb.open(path, map_size=map_size, max_dbs=4, subdir=True,
                             sync=True, metasync=True, readahead=False, meminit=False)
        self.objects = self.env.open_db(b"objects")
        self.meta = self.env.open_db(b"meta")

    def close(self) -> None:
        self.env.close()

    # ---- meta ---------------------------------------------------------------------

    def read_meta(self) -> dict | None:
        with self.env.begin(db=self.meta) as txn:
            raw = txn.get(b"layout")
        return json.loads(raw) if raw is not None else None

    def write_meta(self, layout: dict) -> None:
        self._write(lambda txn: txn.put(b"layout", json.dumps(layout, sort_keys=True).encode(),
                                        db=self.meta))

    # ---- objects ------------------------------------------------------------------

    def get(self, ckey: bytes) -> Record | None:
        with self.env.begin(db=self.objects, buffers=True) as txn:
            raw = txn.get(ckey)
            return Record.unpack(raw) if raw is not None else None

    def get_many(self, ckeys: list[bytes]) -> list[Record | None]:
        with self.env.begin(db=self.objects, buffers=True) as txn:
            out = []
            for k in ckeys:
                raw = txn.get(k)
                out.append(Record.unpack(raw) if raw is not None else None)
            return out

    def keys(self, ns: str, prefix: bytes = b"") -> Iterator[bytes]:
        """Keys of namespace ns starting with prefix, in byte order."""
        start = ns.encode() + b"\0" + prefix
        with self.env.begin(db=self.objects) as txn:
            cur = txn.cursor()
            if not cur.set_range(start):
                return
            for k in cur.iternext(keys=True, values=False):
                if not k.startswith(start):
                    break
                yield k[len(ns) + 1:]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (catalog key, raw record): fsck decodes them itself."""
        with self.env.begin(db=self.objects) as txn:
            yield from txn.cursor().iternext()

    def count(self) -> int:
        with self.env.begin(db=self.objects) as txn:
            return txn.stat(self.objects)["entries"]

    def commit(self, puts: Iterable[tuple[bytes, Record]] = (),
               deletes: Iterable[bytes] = ()) -> tuple[list[Record], list[bool]]:
        """Apply puts and deletes in ONE durable transaction.

        Returns the records that the transaction replaced or removed (their
        extents may be freed once it has committed) and, per delete, whether
        the key existed.
        """
        puts, deletes = list(puts), list(deletes)

        def body(txn):
            dropped: list[Record] = []
            existed: list[bool] = []
            for ckey, rec in puts:
                old = txn.get(ckey, db=self.objects)
                if old is not None:
                    dropped.append(Record.unpack(old))
                txn.put(ckey, rec.pack(), db=self.objects)
            for ckey in deletes:
                old = txn.pop(ckey, db=self.objects)
                existed.append(old is not None)
                if old is not None:
                    dropped.append(Record.unpack(old))
            return dropped, existed

        return self._write(body)

    def _write(self, body):
        # A full map is not a full store: grow the (sparse) map and retry.
        for _ in range(8):
            try:
                with self.env.begin(write=True) as txn:
                    return body(txn)
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
        raise RuntimeError("catalog map could not grow enough for one transaction")
