"""The DRAM hot tier: per-namespace arenas, one index, leases, eviction, write-back.

An object's life in DRAM:

    alloc -> PENDING (pages reserved, invisible; owned by one connection)
    commit -> DIRTY (visible; queued for the flusher; content-named ones
              hashed here, others checksummed by the store on write-back)
    flusher -> FLUSHING (pinned while its pages go to NVMe) -> CLEAN
    get miss -> LOADING (read from NVMe straight into the arena) -> CLEAN
    evict (CLEAN, unpinned only) -> gone from DRAM, still on NVMe

Invariant 3: a pinned entry (leases, the flusher, a loader) is never evicted
and its pages are never reused; a delete or overwrite detaches it from the
index and its pages are freed when the last pin goes.

One condition variable (`self.cond`) guards every structure here; I/O
(flush, promotion) happens outside it. The flusher has priority only in the
sense that readers use the store's separate read ring.
"""
from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from dataclasses import dataclass

from tierd.errors import InvalidArgument, LeaseExpired, NotFound, TierFull, UnknownNamespace
from tierd_daemon.dram import keepwarm
from tierd_daemon.dram.arena import Arena
from tierd_daemon.dram.eviction import DEFAULT_POLICY, make_policy
from tierd_daemon.store import codec
from tierd_daemon.store.allocator import Extent

log = logging.getLogger("tierd.dram")

PENDING, DIRTY, FLUSHING, CLEAN, LOADING = "pending", "dirty", "flushing", "clean", "loading"
FLUSH_BATCH_BYTES = 64 << 20   # per store commit: amortizes its syncs; reads use their own ring
MAX_LEASES = 1 << 20


@dataclass(eq=False)
class Entry:
    ns: str
    key: bytes | None          # None: allocated unnamed, named at commit
    extent: Extent
    size: int
    state: str
    checksum: int = 0
    checksum_given: bool = False   # computed at commit (content naming): the store trusts it
    pins: int = 0
    live: bool = True          # False once deleted/replaced (freed at pins == 0)
    deleted: bool = False      # detached by a delete (not by an overwrite)
    persisted: bool = False
    error: Exception | None = None
    mtime_ns: int = 0
    waiters: int = 0           # callers blocked in wait_persisted on this version
    itemsize: int = 1          # element size hint for dtype-aware compression
    group: int = 0             # non-zero: flushed with its group in one catalog transaction


@dataclass
class NsStats:
    hits_dram: int = 0
    hits_nvme: int = 0
    misses: int = 0
    evictions: int = 0
    flushed_bytes: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    dedup_bytes: int = 0       # committed with if_absent under an existing key: not written


@dataclass
class Lease:
    entry: Entry
    owner: int
    expires: float


class NamespaceTier:
    def __init__(self, ns: str, arena: Arena, policy) -> None:
        self.ns = ns
        self.arena = arena
        self.policy = policy
        self.stats = NsStats()
        self.dirty_bytes = 0


class DramTier:
    def __init__(self, store, namespaces: dict, page: int, *, alloc_timeout_s: float,
                 lease_timeout_s: float, policy: str = DEFAULT_POLICY,
                 keep_warm: str = "off", keep_warm_interval_s: float = 5.0) -> None:
        self.store = store
        self.page = page
        self.alloc_timeout_s = alloc_timeout_s
        self.lease_timeout_s = lease_timeout_s
        self.cond = threading.Condition()
        self.tiers: dict[str, NamespaceTier] = {}
        for ns, cfg in namespaces.items():
            self.add_namespace(ns, cfg, policy)
        self.index: dict[tuple[str, bytes], Entry] = {}
        self.pending: dict[int, tuple[Entry, int]] = {}      # token -> (entry, owner)
        self.leases: dict[int, Lease] = {}
        self.loading: dict[tuple[str, bytes], threading.Event] = {}
        self.flush_queue: collections.deque[Entry] = collections.deque()
        self._ids = itertools.count(1)
        self._stop = False
        self._flush_error_logged = False
        self.metrics = None     # set by the service when metrics are on
        self.flusher = threading.Thread(target=self._flush_loop, name="tierd-flusher", daemon=True)
        self.reaper = threading.Thread(target=self._reap_loop, name="tierd-lease-reaper",
                                       daemon=True)
        on, self.keep_warm_why = keepwarm.decide(keep_warm)
        self.keep_warm = keepwarm.KeepWarm(self._arena_arrays, keep_warm_interval_s) if on else None

    def add_namespace(self, ns: str, cfg, policy: str = DEFAULT_POLICY) -> NamespaceTier:
        arena = Arena(ns, cfg.dram_bytes, self.page, huge_pages=cfg.huge_pages)
        self.store.register_memory(arena.array)
        t = NamespaceTier(ns, arena, make_policy(policy, arena.nbytes))
        with self.cond:
            self.tiers[ns] = t
        return t

    def _arena_arrays(self) -> list:
        with self.cond:
            return [t.arena.array for t in self.tiers.values() if t.arena.array is not None]

    def start(self) -> None:
        self.flusher.start()
        self.reaper.start()
        if self.keep_warm is not None:
            self.keep_warm.start()
            log.info("keeping the DRAM arenas warm: a byte of every page read every %g s (%s; "
                     "a host may reclaim idle guest memory, and writing it again is slow)",
                     self.keep_warm.interval_s, self.keep_warm_why)
        else:
            log.info("not keeping the DRAM arenas warm (%s)", self.keep_warm_why)

    def stop(self) -> None:
        with self.cond:
            self._stop = True
            self.cond.notify_all()
        for t in (self.flusher, self.reaper):
            if t.is_alive():
                t.join(timeout=30)
        if self.keep_warm is not None:
            self.keep_warm.stop()

    def tier(self, ns: str) -> NamespaceTier:
        try:
            return self.tiers[ns]
        except KeyError:
            raise UnknownNamespace(f"unknown namespace {ns!r}; configured: "
                                   f"{', '.join(sorted(self.tiers))}") from None

    # ---- put: alloc / commit / abort ---------------------------------------------------

    def alloc(self, ns: str, items: list[tuple], owner: int) -> list[dict]:
        """Reserve contiguous arena pages for each (key, nbytes); all or nothing.

        Waits up to alloc_timeout_s for the flusher to make room, then
        TierFull. Never overcommits: the arena is the bound (invariant 6).
        """
        t = self.tier(ns)
        items = [(it[0], it[1], it[2] if len(it) > 2 else 1) for it in items]
        for key, n, _ in items:
            if n > t.arena.nbytes:
                raise InvalidArgument(
                    f"object {key!r} of {n} bytes exceeds namespace {ns!r}'s DRAM arena "
                    f"({t.arena.nbytes} bytes); raise namespaces.{ns}.dram_bytes")
        deadline = time.monotonic() + self.alloc_timeout_s
        out: list[dict] = []
        with self.cond:
            taken: list[Entry] = []
            try:
                for key, n, itemsize in items:
                    e = self._alloc_locked(t, key, n, deadline)
                    e.itemsize = itemsize
                    taken.append(e)
            except BaseException:
                for e in taken:
                    t.arena.free(e.extent)
                raise
            for e in taken:
                token = next(self._ids)
                self.pending[token] = (e, owner)
                out.append({"token": token, "offset": t.arena.offset(e.extent)})
        return out

    def _alloc_locked(self, t: NamespaceTier, key: bytes, n: int, deadline: float) -> Entry:
        while True:
            ext = t.arena.allocate(n)
            if ext is not None:
                return Entry(t.ns, key, ext, n, PENDING)
            if self._evict_locked(t, n):
                continue
            left = deadline - time.monotonic()
            if left <= 0 or self._stop:
                raise TierFull(
                    f"namespace {t.ns!r}: no room for {n} bytes in its {t.arena.nbytes >> 20} MiB "
                    f"DRAM arena after {self.alloc_timeout_s:g} s ({t.dirty_bytes >> 20} MiB dirty "
                    "waiting for NVMe, the rest leased or pending); retry, release leases, or "
                    f"raise namespaces.{t.ns}.dram_bytes")
            self.cond.wait(min(left, 0.5))

    def _evict_locked(self, t: NamespaceTier, need: int) -> bool:
        """Evict clean, unpinned entries until `need` bytes fit contiguously."""
        npages = -(-need // self.page)
        evicted = False
        # One candidate at a time: the policy reads "offered and not evicted"
        # as "in use" (S3-FIFO moves it to its main queue), so we must decide
        # on each before asking for the next, and stop as soon as it fits.
        for key in t.policy.victims():
            e = self.index.get(key)
            if e is None or e.state != CLEAN or e.pins:
                continue
            del self.index[key]
            e.live = False
            t.policy.evicted(key)
            t.arena.free(e.extent)
            t.stats.evictions += 1
            if self.metrics is not None:
                self.metrics.evicted(t.ns)
            evicted = True
            if t.arena.alloc.largest_free >= npages:
                break
        return evicted

    def commit(self, ns: str, tokens: list[int], owner: int, atomic: bool = False,
               keys: list[bytes] | None = None, if_absent: bool = False,
               name_prefix: bytes | None = None
               ) -> tuple[list[Entry], list[bool], list[str] | None]:
        """Make pending objects visible (dirty).

        keys: the objects' names, one per token, replacing the alloc keys (an
        object allocated without a key must be named here).
        name_prefix (instead of keys): each object is named name_prefix + the
        32 hex digits of its xxh3-128, hashed here from its arena pages. That
        one pass also gives the store its checksum (codec.checksum_from_digest),
        so a content-addressed object is hashed once between the client's
        copy and NVMe; a client-side name would be a second pass over the
        same bytes (measured: naming here cut a 1 GiB checkpoint's slowdown
        of a concurrent compute loop from 15.9% to 8.9%; ARCHITECTURE.md).
        if_absent: an object whose key already exists, in DRAM or on NVMe, is
        dropped and its pages freed. With content-addressed keys (same key,
        same bytes) that is deduplication: nothing is written twice.
        atomic: the entries reach the catalog together, in one store batch
        (the flusher never splits a group).

        Returns (entries a "persisted" commit waits on, stored flags, digests
        or None); for a dropped object that entry is the existing DRAM
        version, if any.
        """
        t = self.tier(ns)
        if len(set(tokens)) != len(tokens):
            raise InvalidArgument("commit: a token appears twice")
        assert keys is None or name_prefix is None, "the connection allows one of them"
        with self.cond:
            for tok in tokens:
                got = self.pending.get(tok)
                if got is None or got[1] != owner or got[0].ns != ns:
                    raise InvalidArgument(f"token {tok} is not a pending allocation of this "
                                          f"connection in namespace {ns!r}")
            entries = [self.pending[tok][0] for tok in tokens]
            if keys is None and name_prefix is None:
                unnamed = [tok for tok, e in zip(tokens, entries) if e.key is None]
                if unnamed:
                    raise InvalidArgument(f"commit: token {unnamed[0]} was allocated without a "
                                          "key; pass keys (one per token)")
            elif keys is not None:
                assert len(keys) == len(entries), "the connection checks one key per token"
                for e, k in zip(entries, keys):
                    e.key = k
            for tok in tokens:
                del self.pending[tok]
        digests = None
        if name_prefix is not None:
            # Outside the lock: the entries are this connection's alone until
            # they are inserted below (xxh3 releases the GIL).
            try:
                digests = []
                for e in entries:
                    data = t.arena.view(e.extent, e.size)
                    d = codec.digest(data)
                    digests.append(codec.digest_hex(d))
                    e.key = name_prefix + digests[-1].encode()
                    e.checksum, e.checksum_given = codec.checksum_from_digest(d, data), True
            except BaseException:
                with self.cond:
                    for e in entries:
                        t.arena.free(e.extent)
                raise
        # Otherwise no checksum here: the store computes it (xxh3, overlapped
        # with the write) when the flusher persists the object, and verifies
        # it on every NVMe read. A staged object lives only in DRAM until then.
        now = time.time_ns()
        waits: list[Entry] = []
        stored: list[bool] = []
        dropped = 0
        with self.cond:
            group = next(self._ids) if atomic and len(entries) > 1 else 0
            for e in entries:
                if if_absent:
                    old = self.index.get((ns, e.key))
                    # An LMDB lookup under the lock: a memory-mapped B-tree
                    # read (microseconds), and it keeps check-and-insert whole.
                    if old is not None or self.store.contains(ns, e.key):
                        e.live = False
                        t.arena.free(e.extent)
                        dropped += e.size
                        stored.append(False)
                        if old is not None:
                            waits.append(old)
                        continue
                stored.append(True)
                e.mtime_ns = now
                e.state = DIRTY
                e.group = group
                self._replace_locked(t, e)
                t.dirty_bytes += e.size
                t.stats.bytes_written += e.size
                self.flush_queue.append(e)
                waits.append(e)
            t.stats.dedup_bytes += dropped
            self.cond.notify_all()
        if dropped and self.metrics is not None:
            self.metrics.deduplicated(ns, dropped)
        return waits, stored, digests

    def _replace_locked(self, t: NamespaceTier, e: Entry) -> None:
        k = (e.ns, e.key)
        old = self.index.get(k)
        if old is not None:
            self._detach_locked(t, old, deleted=False)
        self.index[k] = e
        t.policy.insert(k, max(e.size, 1))

    def _detach_locked(self, t: NamespaceTier, e: Entry, deleted: bool) -> None:
        k = (e.ns, e.key)
        if self.index.get(k) is e:
            del self.index[k]
            t.policy.remove(k)
        e.live = False
        e.deleted = deleted
        if e.state == DIRTY and e.waiters == 0:
            # Never flushed and nobody was promised it: a newer version or a
            # delete won, so skip the write. A version someone waits on as
            # "persisted" is still flushed (FIFO keeps it before the newer one).
            t.dirty_bytes -= e.size
            e.state = CLEAN
            e.persisted = True
        if e.pins == 0 and e.state == CLEAN:
            t.arena.free(e.extent)

    def abort(self, tokens: list[int], owner: int) -> None:
        with self.cond:
            for tok in tokens:
                got = self.pending.get(tok)
                if got is not None and got[1] == owner:
                    del self.pending[tok]
                    self.tiers[got[0].ns].arena.free(got[0].extent)
            self.cond.notify_all()

    def wait_persisted(self, entries: list[Entry]) -> None:
        """Block until each entry is on NVMe (or superseded); raise its flush error."""
        with self.cond:
            for e in entries:
                e.waiters += 1
            try:
                while True:
                    errs = [e.error for e in entries if e.error is not None]
                    if errs:
                        raise errs[0]
                    if all(e.persisted for e in entries):
                        return
                    if self._stop and not self.flusher.is_alive():
                        raise TierFull("daemon stopped before the data was persisted")
                    self.cond.wait(1.0)
            finally:
                for e in entries:
                    e.waiters -= 1

    def persist(self, ns: str, keys: list[bytes]) -> None:
        """Wait until each key's current version is persisted (staged puts included)."""
        self.tier(ns)
        with self.cond:
            entries = [self.index.get((ns, k)) for k in keys]
        self.wait_persisted([e for e in entries if e is not None])
        missing = [k for k, e in zip(keys, entries) if e is None and not self.store.contains(ns, k)]
        if missing:
            raise NotFound(f"no object {missing[0]!r}{' and others' if len(missing) > 1 else ''} "
                           f"in namespace {ns!r}")

    # ---- get / release -----------------------------------------------------------------

    def get(self, ns: str, keys: list[bytes], lease: bool, owner: int) -> list[dict | None]:
        """DRAM hits at once; all NVMe misses of the request in ONE store batch
        (promotion straight into the arena, verified), so a get of many cold
        objects keeps the device queue full."""
        t = self.tier(ns)
        out: list[dict | None] = [None] * len(keys)
        todo = list(range(len(keys)))
        try:
            while todo:
                mine, theirs = [], []
                with self.cond:
                    for i in todo:
                        k = (ns, keys[i])
                        e = self.index.get(k)
                        if e is not None:
                            t.policy.access(k)
                            t.stats.hits_dram += 1
                            t.stats.bytes_read += e.size
                            if self.metrics is not None:
                                self.metrics.hit(ns, "dram", e.size)
                            out[i] = self._hand_out_locked(t, e, "dram", lease, owner)
                        elif k in self.loading:       # another request is loading it
                            theirs.append((i, self.loading[k]))
                        else:
                            self.loading[k] = threading.Event()
                            mine.append(i)
                if mine:
                    self._load_many(t, keys, mine, out, lease, owner)
                for _, ev in theirs:
                    ev.wait()
                todo = [i for i, _ in theirs]         # look again: now a hit (or a miss)
        except BaseException:
            self.release([r["lease"] for r in out if r and r.get("lease")], owner)
            raise
        return out

    def _load_many(self, t: NamespaceTier, keys: list[bytes], idx: list[int],
                   out: list, lease: bool, owner: int) -> None:
        """Promote keys[i] for i in idx from NVMe; misses stay None."""
        loaded: list[tuple[int, Entry]] = []
        try:
            infos = []
            for i in idx:
                try:
                    infos.append((i, self.store.stat(t.ns, keys[i])))
                except NotFound:
                    with self.cond:
                        t.stats.misses += 1
                    if self.metrics is not None:
                        self.metrics.miss(t.ns)
            deadline = time.monotonic() + self.alloc_timeout_s
            with self.cond:
                try:
                    for i, info in infos:
                        e = self._alloc_locked(t, keys[i], info.size, deadline)
                        e.state, e.pins = LOADING, 1
                        e.checksum, e.mtime_ns = info.checksum, info.mtime_ns
                        loaded.append((i, e))
                except BaseException:
                    for _, e in loaded:
                        t.arena.free(e.extent)
                    loaded = []
                    raise
            present = self._read_into_arena(t, [e for _, e in loaded])
            with self.cond:
                # Pop as we go: the finally below frees only what was not
                # inserted, even if handing out a lease fails midway.
                for ok in present:
                    i, e = loaded.pop(0)
                    e.pins -= 1
                    if not ok:               # deleted meanwhile, or a damaged cache copy dropped
                        t.arena.free(e.extent)
                        t.stats.misses += 1
                        continue
                    e.state, e.persisted = CLEAN, True
                    k = (t.ns, e.key)
                    if k in self.index:      # a put raced the load: the put wins
                        t.arena.free(e.extent)
                        e = self.index[k]
                    else:
                        self.index[k] = e
                        t.policy.insert(k, max(e.size, 1))
                    t.stats.hits_nvme += 1
                    t.stats.bytes_read += e.size
                    if self.metrics is not None:
                        self.metrics.hit(t.ns, "nvme", e.size)
                    out[i] = self._hand_out_locked(t, e, "nvme", lease, owner)
        finally:
            with self.cond:
                for _, e in loaded:          # an exception between alloc and insert
                    t.arena.free(e.extent)
                for i in idx:
                    ev = self.loading.pop((t.ns, keys[i]), None)
                    if ev is not None:
                        ev.set()

    def _read_into_arena(self, t: NamespaceTier, entries: list[Entry]) -> list[bool]:
        """One batch read of entries from NVMe into their arena pages.

        Returns, per entry, whether it was there. A batch failing on one
        missing/dropped object is retried object by object to find which.
        """
        if not entries:
            return []
        # Whole-page views: the extent owns its last page, so the store can
        # read the final partial page straight into the arena (a view cut at
        # e.size would send it through the staging pool: a needless copy).
        views = [t.arena.view(e.extent, e.extent.npages * self.page) for e in entries]
        try:
            sizes = self.store.get_many(t.ns, [e.key for e in entries], out=views)
            return [sz == e.size for sz, e in zip(sizes, entries)]
        except NotFound:
            ok = []
            for e, v in zip(entries, views):
                try:
                    ok.append(self.store.get_into(t.ns, e.key, v) == e.size)
                except NotFound:
                    ok.append(False)
            return ok

    def _hand_out_locked(self, t: NamespaceTier, e: Entry, tier: str, lease: bool,
                         owner: int) -> dict:
        lid = None
        if lease:
            if len(self.leases) >= MAX_LEASES:
                from tierd.errors import Busy
                raise Busy(f"{MAX_LEASES} leases are outstanding; release some")
            lid = next(self._ids)
            e.pins += 1
            self.leases[lid] = Lease(e, owner, time.monotonic() + self.lease_timeout_s)
        return {"offset": t.arena.offset(e.extent), "size": e.size, "tier": tier, "lease": lid}

    def release(self, lease_ids: list[int], owner: int | None) -> None:
        with self.cond:
            for lid in lease_ids:
                ls = self.leases.get(lid)
                if ls is None:
                    continue   # already released or expired: releasing is idempotent
                if owner is not None and ls.owner != owner:
                    raise LeaseExpired(f"lease {lid} belongs to another connection")
                del self.leases[lid]
                self._unpin_locked(ls.entry)
            self.cond.notify_all()

    def _unpin_locked(self, e: Entry) -> None:
        e.pins -= 1
        assert e.pins >= 0, "unbalanced unpin"
        if e.pins == 0 and not e.live and e.state == CLEAN:
            self.tiers[e.ns].arena.free(e.extent)

    def drop_owner(self, owner: int) -> tuple[int, int]:
        """A connection ended: release its leases and abort its allocations."""
        with self.cond:
            lids = [lid for lid, ls in self.leases.items() if ls.owner == owner]
            toks = [tok for tok, (_, o) in self.pending.items() if o == owner]
        self.release(lids, owner)
        self.abort(toks, owner)
        return len(lids), len(toks)

    # ---- delete / contains / stat / list ----------------------------------------------

    def delete(self, ns: str, keys: list[bytes]) -> list[bool]:
        t = self.tier(ns)
        in_dram = []
        with self.cond:
            for key in keys:
                e = self.index.get((ns, key))
                # A version being flushed must land first, or its catalog
                # commit could resurrect the key after our delete.
                while e is not None and e.state == FLUSHING:
                    self.cond.wait(1.0)
                    e = self.index.get((ns, key))
                in_dram.append(e is not None)
                if e is not None:
                    self._detach_locked(t, e, deleted=True)
            self.cond.notify_all()
        on_nvme = self.store.delete_many(ns, keys)
        return [a or b for a, b in zip(in_dram, on_nvme)]

    def contains(self, ns: str, keys: list[bytes]) -> list[bool]:
        self.tier(ns)
        with self.cond:
            hot = [(ns, k) in self.index for k in keys]
        return [h or self.store.contains(ns, k) for h, k in zip(hot, keys)]

    def stat(self, ns: str, key: bytes) -> dict:
        self.tier(ns)
        with self.cond:
            e = self.index.get((ns, key))
            if e is not None:
                return {"size": e.size, "tier": "dram", "state": e.state,
                        "checksum": e.checksum if e.persisted else None,
                        "mtime_ns": e.mtime_ns}
        info = self.store.stat(ns, key)
        return {"size": info.size, "tier": "nvme", "state": "clean", "checksum": info.checksum,
                "mtime_ns": info.mtime_ns}

    def list(self, ns: str, prefix: bytes, after: bytes, limit: int) -> dict:
        self.tier(ns)
        with self.cond:
            hot = sorted(k for (n, k) in self.index if n == ns and k.startswith(prefix)
                         and k > after)
        cold = []
        for k in self.store.list(ns, prefix):
            if k > after:
                cold.append(k)
                if len(cold) > limit:
                    break
        merged = sorted(set(hot[:limit + 1]) | set(cold))
        return {"keys": merged[:limit], "more": len(merged) > limit}

    # ---- write-back ------------------------------------------------------------------

    def _flush_loop(self) -> None:
        while True:
            with self.cond:
                while not self._stop and not self.flush_queue:
                    self.cond.wait()
                # stop() comes after the service's final flush (which waits
                # while write-back progresses): whatever is left cannot be written.
                if self._stop:
                    return
                batch = self._take_batch_locked()
            if batch:
                self._flush_batch(batch)

    def _take_batch_locked(self) -> list[Entry]:
        """Up to FLUSH_BATCH_BYTES of dirty entries of one namespace.

        An atomic group is taken whole (it may exceed the byte bound) and
        never split across batches: its catalog commit is one transaction.
        """
        batch: list[Entry] = []
        size = 0
        ns = None
        keys = set()
        q = self.flush_queue
        while q:
            if q[0].state != DIRTY:
                q.popleft()   # superseded or deleted before its turn
                continue
            g = q[0].group
            run = [q[0]] if g == 0 else list(itertools.takewhile(lambda x: x.group == g, q))
            live = [e for e in run if e.state == DIRTY]
            run_bytes = sum(e.size for e in live)
            if ns is not None and (run[0].ns != ns or size + run_bytes > FLUSH_BATCH_BYTES
                                   or any(e.key in keys for e in live)):
                break
            for _ in run:
                q.popleft()
            for e in live:
                ns = e.ns
                keys.add(e.key)
                e.state = FLUSHING
                e.pins += 1
                batch.append(e)
            size += run_bytes
        return batch

    def _flush_batch(self, batch: list[Entry]) -> None:
        t = self.tiers[batch[0].ns]
        try:
            infos = self.store.put_many(t.ns, [
                (e.key, t.arena.view(e.extent, e.size), e.itemsize) if e.itemsize > 1
                else (e.key, t.arena.view(e.extent, e.size)) for e in batch],
                checksums=[e.checksum if e.checksum_given else None for e in batch])
            err = None
        except Exception as exc:   # StoreFull, EIO...: keep the data dirty, retry later
            infos, err = [None] * len(batch), exc
        with self.cond:
            for e, info in zip(batch, infos):
                e.pins -= 1
                if err is None:
                    e.checksum = info.checksum
                    e.persisted = True
                    e.state = CLEAN
                    t.dirty_bytes -= e.size
                    t.stats.flushed_bytes += e.size
                    if self.metrics is not None:
                        self.metrics.flushed(t.ns, e.size)
                else:
                    e.state = DIRTY
                    e.error = err if not isinstance(err, OSError) else TierFull(
                        f"write-back to NVMe failed: {err}")
                if not e.live and e.pins == 0 and e.state == CLEAN:
                    t.arena.free(e.extent)
            if err is not None:
                if not self._flush_error_logged:
                    log.error("write-back of %d objects in %r failed: %s; will retry",
                              len(batch), t.ns, err)
                    self._flush_error_logged = True
                self.cond.notify_all()
                if not self._stop:
                    self.cond.wait(1.0)      # back off before retrying
                for e in batch:
                    if e.state == DIRTY:
                        e.error = None
                        self.flush_queue.append(e)
            else:
                self._flush_error_logged = False
            self.cond.notify_all()
        if err is None:
            deleted = [e.key for e in batch if e.deleted]
            if deleted:     # defensive: delete waits for FLUSHING, so rare
                self.store.delete_many(t.ns, deleted)

    def flush(self, ns: str | None = None, timeout: float | None = None) -> bool:
        """Wait until no dirty data remains (in ns, or anywhere)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while any(t.dirty_bytes for n, t in self.tiers.items() if ns in (None, n)) or any(
                    e.state in (DIRTY, FLUSHING) and ns in (None, e.ns) for e in self.flush_queue):
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                self.cond.wait(0.5)
        return True

    # ---- lease timeouts ----------------------------------------------------------------

    def _reap_loop(self) -> None:
        while True:
            with self.cond:
                if self._stop:
                    return
                self.cond.wait(1.0)
                now = time.monotonic()
                expired = [(lid, ls) for lid, ls in self.leases.items() if ls.expires <= now]
                for lid, ls in expired:
                    del self.leases[lid]
                    self._unpin_locked(ls.entry)
                if expired:
                    self.cond.notify_all()
            for lid, ls in expired:
                log.warning("lease %d on %s/%r expired after %g s without release", lid,
                            ls.entry.ns, ls.entry.key, self.lease_timeout_s)

    # ---- status ------------------------------------------------------------------------

    def keep_warm_status(self) -> dict:
        k = self.keep_warm
        return {"keep_warm": k is not None, "keep_warm_why": self.keep_warm_why,
                "keep_warm_interval_s": k.interval_s if k else None,
                "keep_warm_passes": k.passes if k else 0,
                "keep_warm_last_pass_ms": round(k.last_pass_s * 1e3, 1) if k else None}

    def status(self) -> dict:
        out = {}
        with self.cond:
            per_ns = collections.Counter()
            pinned = collections.Counter()
            for e in self.index.values():
                per_ns[e.ns] += 1
                if e.pins:
                    pinned[e.ns] += e.extent.npages * self.page
            leases = collections.Counter(ls.entry.ns for ls in self.leases.values())
            for ns, t in self.tiers.items():
                a = t.arena
                used = a.alloc.used_pages * self.page
                s = t.stats
                lookups = s.hits_dram + s.hits_nvme + s.misses
                out[ns] = {
                    "dram_bytes": a.nbytes, "dram_used": used, "dram_free": a.nbytes - used,
                    "dirty_bytes": t.dirty_bytes, "pinned_bytes": pinned[ns],
                    "objects_in_dram": per_ns[ns], "leases": leases[ns], "backing": a.backing,
                    "hits_dram": s.hits_dram, "hits_nvme": s.hits_nvme, "misses": s.misses,
                    "hit_rate_dram": round(s.hits_dram / lookups, 4) if lookups else None,
                    "evictions": s.evictions, "flushed_bytes": s.flushed_bytes,
                    "bytes_written": s.bytes_written, "bytes_read": s.bytes_read,
                    "dedup_bytes": s.dedup_bytes,
                    "flush_backlog_bytes": t.dirty_bytes,
                }
        return out
