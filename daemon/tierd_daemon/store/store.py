"""The NVMe object store.

Write path (invariant 1): allocate extents -> write the pages with the engine
(O_DIRECT, straight from the caller's buffer when it is page-aligned, else
through the staging pool) -> fdatasync the touched files (durable
namespaces) -> one LMDB transaction makes the objects visible -> only then
are the extents of replaced objects freed. Nothing is overwritten in place,
so a crash at any point leaves either the old or the new object.

Read path (invariant 2): look up and pin the extents -> read -> verify the
xxh3 checksum of the logical bytes. A mismatch raises ChecksumError for
durable namespaces; for cache namespaces the object is dropped and the read
is a miss. Never wrong bytes.

Accounting (invariant 5): allocator-used pages == pages the catalog
references + pages of writes in flight + freed pages still pinned by readers.

Concurrency: one lock guards the allocator, pins and counters; I/O and the
catalog commit run outside it. Lookup+pin and commit->free are each atomic
under the lock, so a reader never reads extents that were freed and reused.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from tierd.errors import (ChecksumError, InvalidArgument, NotFound, StoreFull, TierdError,
                          UnknownNamespace)
from tierd_daemon.dio import aligned_buffer
from tierd_daemon.engine import OP_FSYNC, OP_READ, OP_WRITE, make_ops, open_engine, raise_for_results
from tierd_daemon.store import codec, grouped
from tierd_daemon.store.allocator import Extent, ExtentAllocator, OverlapError
from tierd_daemon.store.catalog import (ENC_GROUPED, ENC_RAW, ENC_ZSTD, ENCODINGS, Catalog, Record,
                                        decode_key, encode_key)
from tierd_daemon.store.config import StoreConfig
from tierd_daemon.store.datafiles import (DataFiles, DirectoryLock, choose_page_size,
                                          data_file_name, fsync_dir, plan_file_sizes)
from tierd_daemon.store.staging import StagingPool

log = logging.getLogger("tierd.store")

LAYOUT_FORMAT = 1
STAGING_CHUNK_MAX = 256 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    namespace: str
    key: bytes
    size: int            # logical bytes
    stored_size: int     # bytes on disk before page rounding
    encoding: str        # "raw", "zstd" or "grouped"
    checksum: int        # xxh3-64 of the logical bytes
    mtime_ns: int
    extents: int

    @classmethod
    def of(cls, ns: str, key: bytes, rec: Record) -> "ObjectInfo":
        return cls(ns, key, rec.logical_size, rec.stored_size, ENCODINGS[rec.encoding],
                   rec.checksum, rec.mtime_ns, len(rec.extents))


@dataclass(frozen=True)
class StoreUsage:
    page_size: int
    capacity_bytes: int
    used_bytes: int          # allocated: referenced + in flight + pinned-freed
    referenced_bytes: int    # what the catalog references
    inflight_bytes: int
    free_bytes: int
    largest_free_bytes: int
    objects: int
    data_files: int
    engine: str
    fixed_buffers: bool


def _as_bytes_array(data) -> np.ndarray:
    """A flat uint8 view of any contiguous buffer, without copying."""
    if isinstance(data, np.ndarray):
        if not data.flags.c_contiguous:
            raise InvalidArgument("data must be a contiguous buffer (use np.ascontiguousarray)")
        return data.reshape(-1).view(np.uint8)
    try:
        mv = memoryview(data)
    except TypeError:
        raise InvalidArgument(
            f"data must be bytes-like (bytes, bytearray, memoryview, numpy array), "
            f"not {type(data).__name__}") from None
    if not mv.c_contiguous:
        raise InvalidArgument("data must be a contiguous buffer")
    if mv.nbytes == 0:
        return np.empty(0, dtype=np.uint8)
    return np.frombuffer(mv.cast("B"), dtype=np.uint8)


def _buffer(nbytes: int) -> np.ndarray:
    """Page-aligned memory for O_DIRECT reads (an empty array for 0 bytes)."""
    return aligned_buffer(nbytes) if nbytes else np.empty(0, dtype=np.uint8)


class Store:
    """An open store directory. Thread-safe; one process per directory."""

    def __init__(self, path: str, config: StoreConfig, allow_damaged: bool = False) -> None:
        self.path = os.path.abspath(path)
        self.config = config
        self._closed = True
        # With allow_damaged (fsck), an inconsistent catalog opens read-only
        # so it can be diagnosed; `damage` says what is wrong.
        self._allow_damaged = allow_damaged
        self.damage: list[str] = []
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        self._dirlock = DirectoryLock(self.path)
        self._catalog = self._files = self._engine = None
        self._read_engines: tuple = ()
        try:
            self._open()
        except BaseException:
            self._teardown()
            raise
        self._closed = False

    @classmethod
    def open(cls, path: str, config: StoreConfig | None = None, *,
             allow_damaged: bool = False) -> "Store":
        return cls(path, config or StoreConfig(), allow_damaged)

    # ---- open / close -------------------------------------------------------------

    def _open(self) -> None:
        cfg = self.config
        self._catalog = Catalog(os.path.join(self.path, "catalog"), cfg.catalog_map_size)
        layout = self._catalog.read_meta()
        if layout is None:
            page = choose_page_size(self.path)
            sizes = plan_file_sizes(cfg.capacity, cfg.file_size, page)
            self._files = DataFiles(self.path, sizes, cfg.prewrite)
            fsync_dir(self.path)
            if not cfg.prewrite:
                log.info("store %s: new data space is preallocated but unwritten; the first "
                         "write to each part of it is slower (the filesystem converts "
                         "extents). store.prewrite = true writes it once at creation", self.path)
            # The layout is written after the files exist, so a store whose
            # meta is present always has its files.
            layout = {"format": LAYOUT_FORMAT, "page_size": page, "file_sizes": sizes}
            self._catalog.write_meta(layout)
        else:
            if layout.get("format") != LAYOUT_FORMAT:
                raise TierdError(f"store {self.path} has layout format {layout.get('format')}, "
                                 f"this tierd reads format {LAYOUT_FORMAT}")
            page = layout["page_size"]
            sizes = layout["file_sizes"]
            for i, size in enumerate(sizes):
                fp = os.path.join(self.path, data_file_name(i))
                if not os.path.exists(fp) or os.stat(fp).st_size < size:
                    raise TierdError(f"data file {fp} is missing or shorter than {size} bytes; "
                                     "the store is damaged: restore the file or recreate the store")
            self._files = DataFiles(self.path, sizes, cfg.prewrite)
            want = plan_file_sizes(cfg.capacity, cfg.file_size, page, sizes)
            if want != sizes:
                self._files.grow(want)
                layout = dict(layout, file_sizes=want)
                self._catalog.write_meta(layout)
                log.info("store %s: capacity grown from %d to %d bytes", self.path, sum(sizes),
                         sum(want))
            elif cfg.capacity < sum(sizes):
                log.warning("store %s: configured capacity %d is below the store's %d bytes; "
                            "keeping %d (a store never shrinks)", self.path, cfg.capacity,
                            sum(sizes), sum(sizes))
        self.page = page
        file_pages = [s // page for s in self._files.sizes]

        used, objects = [], 0
        # Pages each namespace's objects use (for nvme_bytes quotas); like
        # free space, derived from the catalog, never stored.
        self._ns_pages: Counter[str] = Counter()
        for ckey, raw in self._catalog.items():
            try:
                rec = Record.unpack(raw)
            except ValueError as e:
                self.damage.append(f"catalog record {bytes(ckey)!r} is damaged ({e})")
                continue
            used.extend(rec.extents)
            self._ns_pages[decode_key(ckey)[0]] += rec.npages
            objects += 1
        try:
            self._alloc = ExtentAllocator.from_used(file_pages, used)
        except OverlapError as e:
            self.damage.append(f"catalog is inconsistent ({e})")
            self._alloc = ExtentAllocator(file_pages)
        if self.damage and not self._allow_damaged:
            raise TierdError(f"store {self.path}: {'; '.join(self.damage)}; "
                             "run `tierd fsck` for a full report")

        self._lock = threading.Lock()
        self._inflight_pages = 0
        self._pins: Counter[Extent] = Counter()
        self._deferred: set[Extent] = set()

        # Two rings: reads never queue behind a batch of background (flush)
        # writes in our process; the kernel and device see both streams.
        self._engine = open_engine(cfg.engine, cfg.queue_depth)
        self._engine.register_files(self._files.fds)
        # Reads get two rings of their own, used in turn by the groups of one
        # get_many, so the next group is queued before the last one drains.
        self._read_engines = tuple(open_engine(cfg.engine, cfg.queue_depth) for _ in range(2))
        for eng in self._read_engines:
            eng.register_files(self._files.fds)
        chunk = min(cfg.max_io_bytes, STAGING_CHUNK_MAX)
        self._staging = StagingPool(max(cfg.staging_bytes, chunk), chunk)
        self._memory: list[np.ndarray] = []   # caller regions registered for I/O
        # Writes run here so a put can checksum while its data is in flight;
        # reads have their own thread (never queued behind writes) so a large
        # get verifies one group while the next group's reads are in flight.
        self._io_thread = ThreadPoolExecutor(1, thread_name_prefix="tierd-store-io")
        self._read_thread = ThreadPoolExecutor(len(self._read_engines),
                                               thread_name_prefix="tierd-store-read")
        self._engine.register_buffers([self._staging.region])
        for eng in self._read_engines:
            eng.register_buffers([self._staging.region])
        log.info("store %s: %d data file(s), %.1f GiB, page %d, engine %s%s, %d objects, "
                 "%.1f%% used", self.path, len(file_pages), sum(self._files.sizes) / 2**30, page,
                 self._engine.name, " (fixed buffers)" if self._engine.fixed_buffers else "",
                 objects, 100.0 * self._alloc.used_pages / self._alloc.total_pages)

    def register_memory(self, region: np.ndarray) -> bool:
        """Register a long-lived, page-aligned region (the daemon's arena, a
        benchmark's buffers) with the engine: reads and writes that land in it
        become fixed-buffer I/O, which the kernel maps once instead of per
        request. The store keeps a reference; the region must stay mapped
        until close(). Returns False when the kernel refused (RLIMIT_MEMLOCK):
        I/O still works, with plain buffers."""
        self._check_open()
        assert isinstance(region, np.ndarray) and region.ndim == 1
        assert int(region.ctypes.data) % self.page == 0, "region must be page-aligned"
        self._memory.append(region)
        regions = [self._staging.region]
        for m in self._memory:
            # io_uring takes at most 1 GiB per registered buffer.
            base, size = int(m.ctypes.data), int(m.nbytes)
            for off in range(0, size, 1 << 30):
                regions.append((base + off, min(1 << 30, size - off)))
        ok = self._engine.register_buffers(regions)
        for eng in self._read_engines:
            ok = eng.register_buffers(regions) and ok
        return ok

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._teardown()

    def _teardown(self) -> None:
        for name in ("_io_thread", "_read_thread"):
            pool = getattr(self, name, None)
            if pool is not None:
                pool.shutdown(wait=True)
        for obj in (*self._read_engines, self._engine, self._files, self._catalog):
            if obj is not None:
                obj.close()
        self._dirlock.release()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- helpers ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TierdError("store is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.damage:
            raise TierdError(f"store {self.path} is damaged and open read-only for fsck: "
                             f"{'; '.join(self.damage)}")

    def _ns(self, ns: str):
        try:
            return self.config.namespaces[ns]
        except (KeyError, TypeError):
            raise UnknownNamespace(
                f"unknown namespace {ns!r}; configured: {', '.join(sorted(self.config.namespaces))}"
            ) from None

    def _pages(self, nbytes: int) -> int:
        return (nbytes + self.page - 1) // self.page

    def _max_object(self) -> int:
        return self.config.max_object_bytes or sum(self._files.sizes)

    # ---- put ----------------------------------------------------------------------

    def put(self, ns: str, key: bytes | str, data) -> ObjectInfo:
        """Store one object; durable (for durable namespaces) when it returns."""
        return self.put_many(ns, [(key, data)])[0]

    def put_many(self, ns: str, items: Iterable[tuple],
                 checksums: Sequence[int | None] | None = None) -> list[ObjectInfo]:
        """Store several objects: one engine batch, one sync, one catalog transaction.

        items are (key, data) or (key, data, itemsize): itemsize is the size
        of the data's elements (2 for bf16, 4 for fp32), which a "grouped"
        namespace uses to code the bytes per element; without it, a numpy
        array's dtype gives it, else 1. Encoding never modifies `data`.
        checksums (one per item, None: compute it here): codec.checksum of
        the data, already computed by the caller from these same bytes (the
        daemon's content naming derives it from the name's hash at commit,
        codec.checksum_from_digest, so a chunk is hashed once). Trusted
        as given: a wrong one makes every read of that object a
        ChecksumError, never wrong bytes.
        All or nothing: on any error no object of the batch becomes visible.
        """
        self._check_writable()
        policy = self._ns(ns)
        items = list(items)
        if checksums is not None:
            checksums = list(checksums)
            if len(checksums) != len(items):
                raise InvalidArgument(f"put_many: {len(checksums)} checksums for {len(items)} items")
            for c in checksums:
                if c is not None and not (isinstance(c, int) and 0 <= c < 1 << 64):
                    raise InvalidArgument(f"put_many: checksum {c!r} is not a 64-bit integer")
        # (ckey, key, payload array, encoding, logical size, logical bytes,
        #  given checksum or None)
        prepared = []
        seen = set()
        for i, item in enumerate(items):
            if len(item) == 3:
                key, data, itemsize = item
                if (not isinstance(itemsize, (int, np.integer)) or isinstance(itemsize, bool)
                        or itemsize < 1):
                    raise InvalidArgument(f"itemsize of {key!r} must be an integer >= 1, "
                                          f"got {itemsize!r}")
                itemsize = int(itemsize)
            elif len(item) == 2:
                key, data = item
                itemsize = data.dtype.itemsize if isinstance(data, np.ndarray) else 1
            else:
                raise InvalidArgument("put_many items are (key, data) or (key, data, itemsize)")
            ckey = encode_key(ns, key)
            if ckey in seen:
                raise InvalidArgument(f"key {key!r} appears twice in one batch")
            seen.add(ckey)
            arr = _as_bytes_array(data)
            if arr.nbytes > self._max_object():
                raise InvalidArgument(
                    f"object {key!r} of {arr.nbytes} bytes exceeds the largest object this store "
                    f"takes ({self._max_object()} bytes; store.max_object_bytes / capacity)")
            payload, enc = arr, ENC_RAW
            if policy.compression != "none" and arr.nbytes > self.page:
                # Encoders write new buffers; arr (the caller's bytes) is only read.
                if (policy.compression == "grouped"
                        and 1 < itemsize <= grouped.MAX_ITEMSIZE):
                    packed, penc = grouped.encode(arr, itemsize), ENC_GROUPED
                else:
                    packed, penc = codec.zstd_compress(arr, policy.zstd_level), ENC_ZSTD
                if packed is not None and self._pages(len(packed)) < self._pages(arr.nbytes):
                    payload, enc = np.frombuffer(packed, dtype=np.uint8), penc
            # The checksum (of the logical bytes, arr) is computed below while
            # the writes are in flight.
            given = checksums[i] if checksums is not None else None
            prepared.append((ckey, decode_key(ckey)[1], payload, enc, arr.nbytes, arr, given))
        if not prepared:
            return []

        extents: list[list[Extent]] = []
        total_pages = 0
        with self._lock:
            if policy.nvme_bytes:
                need = sum(self._pages(p[2].nbytes) for p in prepared)
                have = self._ns_pages[ns]
                if (have + need) * self.page > policy.nvme_bytes:
                    # Conservative: pages of objects this batch replaces are
                    # only known at commit, so they do not count as room.
                    raise StoreFull(
                        f"namespace {ns!r} is at its NVMe quota: {have * self.page} of "
                        f"{policy.nvme_bytes} bytes used, this write needs {need * self.page}; "
                        f"delete objects or raise namespaces.{ns}.nvme_bytes")
            try:
                for p in prepared:
                    n = self._pages(p[2].nbytes)
                    extents.append(self._alloc.allocate(n) if n else [])
                    total_pages += n
            except BaseException:
                for ex in extents:
                    self._alloc.free(ex)
                raise
            self._inflight_pages += total_pages

        committed = False
        try:
            # Write on the I/O thread while this thread checksums: the bytes
            # cannot change during the call, and xxh3 releases the GIL.
            writing = self._io_thread.submit(self._write, [(p[2], ex)
                                                           for p, ex in zip(prepared, extents)])
            try:
                csums = [codec.checksum(p[5]) if p[6] is None else p[6] for p in prepared]
            finally:
                touched = writing.result()
            if policy.durable and touched:
                self._sync(touched)
            now = time.time_ns()
            recs = [(p[0], Record(p[3], p[4], p[2].nbytes, c, now, tuple(ex)))
                    for p, c, ex in zip(prepared, csums, extents)]
            dropped, _ = self._catalog.commit(puts=recs)
            committed = True
        finally:
            with self._lock:
                self._inflight_pages -= total_pages
                if committed:
                    self._ns_pages[ns] += total_pages - sum(r.npages for r in dropped)
                    for rec in dropped:
                        self._free_locked(rec.extents)
                else:
                    for ex in extents:
                        self._alloc.free(ex)
        return [ObjectInfo.of(ns, key, rec) for (_, key, *_), (_, rec) in zip(prepared, recs)]

    def _segments(self, buf: np.ndarray, extents: Sequence[Extent], nbytes: int):
        """(buf offset, file, file offset, length) runs covering nbytes of buf.

        Each run is whole pages and at most max_io_bytes; the last one may
        extend past nbytes (the padding of the final page).
        """
        page, max_io = self.page, self.config.max_io_bytes
        off = 0
        for e in extents:
            ext_bytes = e.npages * page
            pos = 0
            while pos < ext_bytes and off < nbytes:
                n = min(max_io, ext_bytes - pos, self._pages(nbytes - off) * page)
                yield off, e.file, e.page * page + pos, n
                pos += n
                off += n
        assert off >= nbytes

    def _run(self, jobs: list[tuple[np.ndarray, Sequence[Extent], int]], opcode: int,
             what: str, ring: int = 0) -> None:
        """Drive segments of (buffer, extents) jobs through the engine.

        A segment goes straight to/from the job's buffer when that is
        page-aligned and holds the whole padded run; otherwise it passes
        through a staging chunk (split to chunk size). Batches are cut where
        the staging pool would run out, so memory stays bounded.
        """
        chunk_bytes = self._staging.chunk_bytes
        segs = []  # (buf, buf_off, file, file_off, length, direct)
        for buf, extents, nbytes in jobs:
            assert nbytes <= buf.nbytes
            base = int(buf.ctypes.data) if buf.nbytes else 0
            for off, f, foff, n in self._segments(buf, extents, nbytes):
                if base and (base + off) % self.page == 0 and off + n <= buf.nbytes:
                    segs.append((buf, off, f, foff, n, nbytes, True))
                else:
                    for s in range(0, n, chunk_bytes):
                        segs.append((buf, off + s, f, foff + s, min(chunk_bytes, n - s), nbytes,
                                     False))
        limit = self._staging.nchunks
        i = 0
        while i < len(segs):
            batch, staged = [], 0
            while i < len(segs) and (segs[i][6] or staged < limit):
                staged += not segs[i][6]
                batch.append(segs[i])
                i += 1
            chunks = self._staging.acquire(staged) if staged else []
            try:
                ops = make_ops(len(batch))
                ci = 0
                copy_back = []
                for j, (buf, off, f, foff, n, nbytes, direct) in enumerate(batch):
                    if direct:
                        addr = int(buf.ctypes.data) + off
                    else:
                        chunk = self._staging.chunk(chunks[ci])
                        ci += 1
                        m = max(0, min(n, nbytes - off))
                        if opcode == OP_WRITE:
                            chunk[:m] = buf[off:off + m]
                            chunk[m:n] = 0  # deterministic padding, never stale memory
                        else:
                            copy_back.append((buf, off, chunk, m))
                        addr = int(chunk.ctypes.data)
                    ops[j] = (addr, foff, n, f, opcode, 0, 0, 0)
                (self._read_engines[ring] if opcode == OP_READ else self._engine).submit(ops)
                raise_for_results(ops, what)
                for buf, off, chunk, m in copy_back:
                    buf[off:off + m] = chunk[:m]
            finally:
                if chunks:
                    self._staging.release(chunks)

    def _write(self, jobs: list[tuple[np.ndarray, list[Extent]]]) -> set[int]:
        self._run([(b, ex, b.nbytes) for b, ex in jobs], OP_WRITE, "write")
        return {e.file for _, ex in jobs for e in ex}

    def _sync(self, files: set[int]) -> None:
        ops = make_ops(len(files))
        for j, f in enumerate(sorted(files)):
            ops[j] = (0, 0, 0, f, OP_FSYNC, 0, 0, 0)
        self._engine.submit(ops)
        raise_for_results(ops, "fdatasync")

    # ---- get ----------------------------------------------------------------------

    def _lookup_and_pin(self, ns: str, keys: Sequence[bytes | str]) -> list[tuple[bytes, Record]]:
        ckeys = [encode_key(ns, k) for k in keys]
        with self._lock:
            recs = self._catalog.get_many(ckeys)
            missing = [decode_key(c)[1] for c, r in zip(ckeys, recs) if r is None]
            if missing:
                shown = ", ".join(repr(k) for k in missing[:5])
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                raise NotFound(f"no object {shown}{more} in namespace {ns!r}")
            for r in recs:
                self._pins.update(r.extents)
        return list(zip(ckeys, recs))

    def _unpin(self, recs: Iterable[Record]) -> None:
        with self._lock:
            for r in recs:
                for e in r.extents:
                    self._pins[e] -= 1
                    if self._pins[e] == 0:
                        del self._pins[e]
                        if e in self._deferred:
                            self._deferred.discard(e)
                            self._alloc.free([e])

    def _free_locked(self, extents: Iterable[Extent]) -> None:
        for e in extents:
            if self._pins.get(e):
                self._deferred.add(e)   # a reader still has it: free on unpin
            else:
                self._alloc.free([e])

    def get(self, ns: str, key: bytes | str) -> np.ndarray:
        """The object's bytes as a read-only uint8 array (verified)."""
        return self.get_many(ns, [key])[0]

    def get_many(self, ns: str, keys: Sequence[bytes | str], out: Sequence | None = None):
        """Several objects in one engine batch, verified; NotFound names missing keys.

        Without `out`: a list of read-only uint8 arrays (fresh page-aligned
        memory). With `out` (one writable buffer per key, reused by the
        caller): the objects land in those buffers and the sizes are
        returned. Reads go straight into a buffer that is page-aligned and
        holds the object's whole last page; others are staged.
        """
        self._check_open()
        policy = self._ns(ns)
        if out is not None:
            if len(out) != len(keys):
                raise InvalidArgument(f"out has {len(out)} buffers for {len(keys)} keys")
            dsts = [_as_bytes_array(o) for o in out]
            if not all(d.flags.writeable for d in dsts):
                raise InvalidArgument("out must be a writable buffer (not bytes or a read-only array)")
        pinned = self._lookup_and_pin(ns, keys)
        cleanup: list = []
        try:
            if out is None:
                # Raw objects are read straight into fresh aligned memory;
                # compressed ones decode into a fresh array of their own.
                dsts = [_buffer(rec.npages * self.page) if rec.encoding == ENC_RAW else None
                        for _, rec in pinned]
            jobs, post = [], []
            for dst, (ckey, rec) in zip(dsts, pinned):
                if dst is not None and dst.nbytes < rec.logical_size:
                    raise InvalidArgument(f"out holds {dst.nbytes} bytes, the object "
                                          f"{decode_key(ckey)[1]!r} has {rec.logical_size}")
                if rec.encoding == ENC_RAW:
                    jobs.append((dst, rec.extents, rec.stored_size))
                    post.append((dst, dst))
                else:  # compressed: read the frame aside, decode into dst
                    tmp = _buffer(rec.npages * self.page)
                    jobs.append((tmp, rec.extents, rec.stored_size))
                    post.append((tmp, dst))
            results = []
            reading = self._read_pipelined(jobs)
            cleanup.append(reading.close)   # waits for a read still in flight
            for lo, hi in reading:
                for (src, dst), (ckey, rec) in zip(post[lo:hi], pinned[lo:hi]):
                    # Raw objects were read into dst itself; grouped ones decode
                    # straight into it; zstd ones come back as a new buffer.
                    into = dst[:rec.logical_size] if dst is not None else None
                    arr = self._decode_verify(ns, policy, ckey, rec, src[:rec.stored_size], into)
                    if out is None:
                        arr.flags.writeable = False
                        results.append(arr)
                    else:
                        if rec.encoding == ENC_ZSTD:
                            into[:] = arr
                        results.append(rec.logical_size)
            return results
        finally:
            for fn in cleanup:
                fn()
            self._unpin(rec for _, rec in pinned)

    PIPELINE_GROUP_BYTES = 16 << 20

    def _read_pipelined(self, jobs: list):
        """Read jobs in groups of ~PIPELINE_GROUP_BYTES, yielding (lo, hi) of
        each group once it is read, in order. While the caller verifies a
        group (xxh3 releases the GIL), the next ones are being read: two
        groups are in flight at a time, each on its own ring, so a new group
        is queued the moment one completes and the device queue never
        drains between groups. Measured: the checksum was as long as the
        I/O when the two ran one after the other; with one group in flight
        at a time, a cold 1 GiB get_many took ~450 ms where the engine
        alone read it in ~400."""
        bounds, lo, acc = [], 0, 0
        for i, (_, _, n) in enumerate(jobs):
            acc += n
            if acc >= self.PIPELINE_GROUP_BYTES:
                bounds.append((lo, i + 1))
                lo, acc = i + 1, 0
        if lo < len(jobs):
            bounds.append((lo, len(jobs)))
        if len(bounds) <= 1:
            if jobs:
                self._run(jobs, OP_READ, "read")
            yield from bounds
            return
        rings = len(self._read_engines)
        inflight: deque = deque()

        def launch(k: int) -> None:
            a, b = bounds[k]
            inflight.append(self._read_thread.submit(self._run, jobs[a:b], OP_READ, "read",
                                                     k % rings))
        try:
            for k in range(min(rings, len(bounds))):
                launch(k)
            for k in range(len(bounds)):
                inflight.popleft().result()
                if k + rings < len(bounds):
                    launch(k + rings)
                yield bounds[k]
        finally:
            # Never return (and unpin) while a read into these pages runs.
            for fut in inflight:
                try:
                    fut.result()
                except Exception:
                    pass

    def get_into(self, ns: str, key: bytes | str, out) -> int:
        """Read one object into a caller's writable buffer; returns its size.

        Zero-copy when `out` is page-aligned and holds the object's whole
        pages (aligned_buffer gives such memory); staged otherwise.
        """
        return self.get_many(ns, [key], out=[out])[0]

    def _decode_verify(self, ns, policy, ckey: bytes, rec: Record, stored: np.ndarray,
                       into: np.ndarray | None = None) -> np.ndarray:
        try:
            if rec.encoding == ENC_ZSTD:
                arr = np.frombuffer(codec.zstd_decompress(stored, rec.logical_size), dtype=np.uint8)
            elif rec.encoding == ENC_GROUPED:
                arr = grouped.decode(stored, rec.logical_size, out=into)
            else:
                arr = stored
            got = codec.checksum(arr)
            ok = arr.nbytes == rec.logical_size and got == rec.checksum
        except Exception as e:  # zstd / grouped refuse damaged frames
            ok, got, arr = False, None, None
            log.debug("decode of %r failed: %s", ckey, e)
        if ok:
            return arr
        key = decode_key(ckey)[1]
        where = ", ".join(f"{data_file_name(e.file)} pages {e.page}-{e.end - 1}" for e in rec.extents)
        msg = (f"checksum mismatch for {ns}/{key!r}: catalog {rec.checksum:#018x}, read "
               f"{'undecodable data' if got is None else f'{got:#018x}'} ({where})")
        if not policy.durable:
            # Cache data: a damaged object is a miss. Drop it so the next
            # writer repopulates it.
            log.warning("%s; dropping it from cache namespace %r", msg, ns)
            if not self.damage:
                self._delete_ckeys([ckey])
            raise NotFound(f"no object {key!r} in namespace {ns!r} (damaged copy dropped)")
        raise ChecksumError(msg + "; the bytes on disk are damaged: restore the object from its source")

    # ---- delete / stat / list ---------------------------------------------------------

    def delete(self, ns: str, key: bytes | str) -> None:
        """Remove one object; NotFound if it does not exist."""
        if not self.delete_many(ns, [key])[0]:
            raise NotFound(f"no object {key!r} in namespace {ns!r}")

    def delete_many(self, ns: str, keys: Sequence[bytes | str]) -> list[bool]:
        """Remove objects in one transaction; per key, whether it existed."""
        self._check_writable()
        self._ns(ns)
        return self._delete_ckeys([encode_key(ns, k) for k in keys])

    def _delete_ckeys(self, ckeys: list[bytes]) -> list[bool]:
        dropped, existed = self._catalog.commit(deletes=ckeys)
        ns = decode_key(ckeys[0])[0] if ckeys else ""
        with self._lock:
            self._ns_pages[ns] -= sum(r.npages for r in dropped)
            for rec in dropped:
                self._free_locked(rec.extents)
        return existed

    def namespace_bytes(self, ns: str) -> int:
        """Bytes (whole pages) the namespace's objects use on NVMe."""
        with self._lock:
            return self._ns_pages[ns] * self.page

    def stat(self, ns: str, key: bytes | str) -> ObjectInfo:
        self._check_open()
        self._ns(ns)
        ckey = encode_key(ns, key)
        rec = self._catalog.get(ckey)
        if rec is None:
            raise NotFound(f"no object {key!r} in namespace {ns!r}")
        return ObjectInfo.of(ns, decode_key(ckey)[1], rec)

    def contains(self, ns: str, key: bytes | str) -> bool:
        self._check_open()
        self._ns(ns)
        return self._catalog.get(encode_key(ns, key)) is not None

    def list(self, ns: str, prefix: bytes | str = b"") -> Iterator[bytes]:
        self._check_open()
        self._ns(ns)
        if isinstance(prefix, str):
            prefix = prefix.encode()
        return self._catalog.keys(ns, prefix)

    # ---- accounting -------------------------------------------------------------------

    def usage(self) -> StoreUsage:
        with self._lock:
            used = self._alloc.used_pages
            inflight = self._inflight_pages
            deferred = sum(e.npages for e in self._deferred)
            free = self._alloc.free_pages
            largest = self._alloc.largest_free
        p = self.page
        return StoreUsage(p, self._alloc.total_pages * p, used * p, (used - inflight - deferred) * p,
                          inflight * p, free * p, largest * p, self._catalog.count(),
                          len(self._files.sizes), self._engine.name, self._engine.fixed_buffers)

    def fsck(self, verify_data: bool = True, progress=None):
        from tierd_daemon.store.fsck import fsck
        return fsck(self, verify_data=verify_data, progress=progress)
