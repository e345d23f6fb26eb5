"""Checkpoint snapshots on tierd: the training loop barely blocks, nothing is lost.

    ck = client.checkpoints("run-42", keep_last=3)        # ns="default"
    h = ck.save(step, state)                 # returns once state is in the DRAM tier
    h = ck.save(step, state, lazy=True)      # returns at once; copies in the background
    h.wait("staged")                         # before mutating tensors (lazy), or ck.barrier()
    h.wait("persisted", timeout=600)         # on NVMe, in the catalog, `latest` moved
    h.status() -> "copying" | "staged" | "persisted" | "failed"
    state = ck.load()                        # latest persisted snapshot; same structure
    with ck.open() as snap: snap.state       # the same, zero-copy (read-only views into DRAM)
    part = ck.load(step, names=["model.w"])  # partial load by tensor path
    ck.steps() -> [int]; ck.latest() -> int | None; ck.delete(step)
    ck.export(step, "out.safetensors"); ck.import_(step, "in.safetensors")

THE CONTRACT FOR LAZY SAVES: with lazy=True, `save` returns before the
tensors are copied. Do not modify any tensor in `state` until
`h.wait("staged")` (or `ck.barrier()`) has returned; the next optimizer step
is the usual place to wait. With lazy=False, `save` returns after the copy:
the tensors may be modified right away.

Layout (keys in the namespace, all under `ckpt/<run>/`):
    c/<xxh3-128 of the chunk>   tensor bytes, chunked (chunk_bytes, 16 MiB by
                                default); content-addressed, so an unchanged
                                tensor is stored once across steps
    m/<step, 20 digits>         the manifest (msgpack): tensor paths, dtype,
                                shape, chunk list and checksums, and the
                                non-tensor state (scalars, strings, bytes)
    latest                      the step of the newest persisted snapshot
A save copies each chunk once, straight into arena space reserved for it
(copy_threads threads, default half the cores, 2..8; that copy is all an
eager save blocks for), then names it by the hash of the arena copy and
commits it with if_absent on a background thread: the daemon drops a
chunk whose name exists, so an unchanged tensor is never written again.
A snapshot becomes visible in one catalog transaction (manifest + latest
together, `atomic` commit) after all of its chunks are persisted. Chunks no
manifest references (a save that died half-way, retention, delete) are
deleted by the collector: at open, after each persisted save, after delete.
One writer per run (rank 0 of a job); any number of readers, which open the
run with readonly=True (they never collect: they cannot see the writer's
in-flight chunks).

Supported in `state`: dicts with str keys, lists and tuples, nested; numpy
arrays of every dtype except object (incl. 0-d, empty, non-contiguous);
bfloat16/float8 via ml_dtypes; torch tensors (CPU; CUDA copied through
host memory) when torch is installed; Python bool/int/float/None/str/bytes.
Anything else raises TypeError naming its path, e.g. "state['opt'][3]".
"""
from __future__ import annotations

import concurrent.futures
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import msgpack
import numpy as np

from tierd import hostmem
from tierd.errors import DaemonUnavailable, InvalidArgument, NotFound, TierdError

FORMAT = 1
PACK_MAX = 1 << 20            # tensors below this are packed together into shared chunks
_BATCH_CHUNKS = 1024          # chunks per reserve/commit request (frame size)
# A load reads a batch of chunks while the previous batch is copied out: a
# quarter of the arena each (two in DRAM at once), up to _LOAD_BATCH_MAX.
# Measured (1 GiB snapshot, cold): batches of 64 and 128 MiB took 0.69-0.70 s,
# 256 MiB 0.56-0.66 s, 512 MiB 0.59 s, open() of all of it in one request 0.57-0.6 s:
# each request's reads ramp down at its end, so fewer, larger ones keep the
# device busier.
_LOAD_BATCH_MAX = 512 << 20
_RUN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
LEVELS = ("staged", "persisted")


# ---- the state tree ------------------------------------------------------------------

@dataclass
class _Tensor:
    path: str
    data: np.ndarray          # flat, C-contiguous uint8 view of the tensor's bytes
    dtype: dict               # how to rebuild the dtype
    shape: tuple
    itemsize: int
    segments: list = field(default_factory=list)   # [(chunk index, offset, length)]


@dataclass
class _Chunk:
    """One stored object of a snapshot: `parts` are (offset, flat uint8 source)."""
    nbytes: int
    itemsize: int             # dtype hint for the namespace's compression
    parts: list
    members: list = field(default_factory=list)   # packed tensors (their segments)


def _fill(dst: np.ndarray, chunk: _Chunk) -> None:
    """Copy a chunk's parts into dst, zeroing the gaps (stable hashes)."""
    pos = 0
    for off, src in chunk.parts + [(chunk.nbytes, None)]:
        assert off >= pos, "a chunk's parts are in order and do not overlap"
        if off > pos:
            dst[pos:off].fill(0)
        if src is None:
            break
        np.copyto(dst[off:off + src.size], src)
        pos = off + src.size


def _results(futures) -> list:
    return [f.result() for f in futures]


def _path(parent: str, key) -> str:
    return f"{parent}.{key}" if parent else str(key)


def _display(trail: tuple) -> str:
    return "state" + "".join(f"[{k!r}]" for k in trail)


def _dtype_desc(dt: np.dtype, trail: tuple) -> dict:
    if dt.hasobject:
        raise TypeError(f"{_display(trail)}: arrays of Python objects cannot be checkpointed "
                        "(dtype object); convert them to a numeric dtype")
    if type(dt).__module__.startswith("ml_dtypes") or dt.name in _ML_NAMES:
        return {"ml": dt.name}
    return {"np": np.lib.format.dtype_to_descr(dt)}


_ML_NAMES = {"bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3b11fnuz",
             "float8_e4m3fnuz", "float8_e5m2fnuz", "int4", "uint4"}


def _as_numpy(obj, trail: tuple):
    """(uint8 flat view, dtype desc, shape, itemsize, source) for an array-like leaf."""
    if isinstance(obj, np.ndarray) or isinstance(obj, np.generic):
        arr = np.asarray(obj)
        desc = _dtype_desc(arr.dtype, trail)
        src = "numpy"
    else:   # torch.Tensor (checked by the caller)
        import torch
        t = obj.detach()
        if t.device.type != "cpu":
            t = t.to("cpu")             # CUDA: copied through host memory
        t = t.contiguous()
        name = str(t.dtype).removeprefix("torch.")
        if t.dtype == torch.bfloat16 or name.startswith("float8"):
            # numpy has no such dtype: keep the bits, name the type
            t = t.view(torch.int16 if t.element_size() == 2 else torch.uint8)
        arr = t.numpy()
        return (arr.reshape(-1).view(np.uint8), {"torch": name}, tuple(obj.shape),
                obj.element_size(), "torch")
    shape = arr.shape
    # A copy only for non-contiguous arrays (not np.ascontiguousarray: it turns
    # 0-d arrays into 1-d ones).
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")
    return arr.reshape(-1).view(np.uint8), desc, shape, arr.dtype.itemsize, src


def _is_torch(obj) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach") and \
        hasattr(obj, "element_size")


def _flatten(obj, path: str, tensors: list[_Tensor], trail: tuple = ()):
    """The manifest's tree: containers and scalars inline, tensors as {"__t": index}.

    path: the dotted name used by load(names=...); trail: the keys, for
    error messages that point at the exact place in `state`.
    """
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{_display(trail)}: dict keys must be str, not "
                                f"{type(k).__name__} ({k!r})")
            out[k] = _flatten(v, _path(path, k), tensors, trail + (k,))
        return {"__d": out}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(v, _path(path, i), tensors, trail + (i,)) for i, v in enumerate(obj)]
        return {"__tuple": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        if isinstance(obj, int) and not isinstance(obj, bool) and not -2**63 <= obj < 2**64:
            return {"__bigint": str(obj)}
        return obj
    if isinstance(obj, (np.ndarray, np.generic)) or _is_torch(obj):
        data, desc, shape, itemsize, src = _as_numpy(obj, trail)
        tensors.append(_Tensor(path, data, dict(desc, src=src,
                                                scalar=isinstance(obj, np.generic)),
                               tuple(int(x) for x in shape), int(itemsize)))
        return {"__t": len(tensors) - 1}
    raise TypeError(f"{_display(trail)}: cannot checkpoint a {type(obj).__module__}."
                    f"{type(obj).__qualname__}; supported: dict, list, tuple, numpy arrays, "
                    "torch tensors, bool, int, float, str, bytes, None")


def _unflatten(node, arrays: dict[int, Any]):
    if isinstance(node, list):
        return [_unflatten(v, arrays) for v in node]
    if isinstance(node, dict):
        if "__t" in node:
            return arrays.get(node["__t"])
        if "__d" in node:
            return {k: _unflatten(v, arrays) for k, v in node["__d"].items()
                    if not (isinstance(v, dict) and "__t" in v and v["__t"] not in arrays)}
        if "__tuple" in node:
            return tuple(_unflatten(v, arrays) for v in node["__tuple"])
        if "__bigint" in node:
            return int(node["__bigint"])
    return node


def _rebuild(raw: np.ndarray, t: dict, as_torch: bool):
    """numpy by default (bf16 via ml_dtypes); torch tensors when asked."""
    shape = tuple(t["shape"])
    return _to_torch(raw, t["dtype"], shape) if as_torch else _to_numpy(raw, t["dtype"], shape)


def _np_dtype(desc: dict) -> np.dtype:
    if "ml" in desc or desc.get("torch", "").startswith(("bfloat16", "float8")):
        name = desc.get("ml") or desc["torch"]
        try:
            import ml_dtypes
        except ImportError:
            raise TierdError(f"this checkpoint holds {name} tensors: pip install ml_dtypes "
                             "(or load with as_torch=True)") from None
        return np.dtype(getattr(ml_dtypes, name))
    if "torch" in desc:
        return np.dtype(desc["torch"] if desc["torch"] != "bool" else np.bool_)
    return np.lib.format.descr_to_dtype(desc["np"])


def _to_numpy(raw: np.ndarray, desc: dict, shape: tuple):
    arr = raw.view(_np_dtype(desc)).reshape(shape)
    return arr[()] if desc.get("scalar") else arr


def _to_torch(raw: np.ndarray, desc: dict, shape: tuple):
    import torch
    name = desc.get("torch") or desc.get("ml") or _np_dtype(desc).name
    dt = getattr(torch, "bool" if name == "bool" else name)
    t = torch.from_numpy(raw)          # raw is a fresh, writable buffer
    return t.view(dt).reshape(shape)


# ---- handles -------------------------------------------------------------------------

class SaveHandle:
    """The progress of one save: copying -> staged -> persisted (or failed)."""

    def __init__(self, step: int) -> None:
        self.step = step
        self._staged = threading.Event()
        self._persisted = threading.Event()
        self.error: BaseException | None = None

    def status(self) -> str:
        if self.error is not None:
            return "failed"
        if self._persisted.is_set():
            return "persisted"
        return "staged" if self._staged.is_set() else "copying"

    def wait(self, level: str = "persisted", timeout: float | None = None) -> "SaveHandle":
        """Block until the snapshot is `level`; raise its error if it failed."""
        if level not in LEVELS:
            raise InvalidArgument(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        ev = self._staged if level == "staged" else self._persisted
        deadline = None if timeout is None else time.monotonic() + timeout
        while not ev.is_set() and self.error is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"checkpoint step {self.step} not {level} after {timeout} s "
                                   f"(now {self.status()})")
            ev.wait(0.05 if left is None else min(left, 0.05))
        if self.error is not None:
            raise self.error
        return self

    def _fail(self, e: BaseException) -> None:
        self.error = e
        self._staged.set()
        self._persisted.set()

    def __repr__(self) -> str:
        return f"<SaveHandle step={self.step} {self.status()}>"


class Snapshot:
    """A snapshot held open zero-copy; close() (or the with block) releases it."""

    def __init__(self, step: int, state, leases: list) -> None:
        self.step = step
        self.state = state
        self._leases = leases

    def close(self) -> None:
        for ls in self._leases:
            ls.release()
        self._leases = []

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- the manager ---------------------------------------------------------------------

class CheckpointManager:
    def __init__(self, client, run: str, keep_last: int = 3, ns: str = "default",
                 chunk_bytes: int = 16 << 20, readonly: bool = False,
                 copy_threads: int | None = None) -> None:
        if not isinstance(run, str) or not _RUN.match(run):
            raise InvalidArgument(f"run name {run!r}: use 1-128 letters, digits, '_', '.', '-'")
        if not isinstance(keep_last, int) or keep_last < 1:
            raise InvalidArgument("keep_last must be >= 1 (the last persisted snapshot is "
                                  "never removed)")
        if not (1 << 20) <= chunk_bytes <= (256 << 20) or chunk_bytes % 4096:
            raise InvalidArgument("chunk_bytes must be 1 MiB..256 MiB, a multiple of 4 KiB")
        cpus = os.cpu_count() or 1
        if copy_threads is None:
            copy_threads = min(cpus, max(2, min(8, cpus // 2)))
        if not isinstance(copy_threads, int) or isinstance(copy_threads, bool) or copy_threads < 1:
            raise InvalidArgument(f"copy_threads must be an int >= 1, not {copy_threads!r}")
        self.c = client
        self.run = run
        self.ns = ns
        self.keep_last = keep_last
        self.chunk_bytes = chunk_bytes
        self.prefix = f"ckpt/{run}/"
        self._bg = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"tierd-ckpt-{run}")
        # Copying is memory-bound: a few threads reach a socket's bandwidth
        # (on this 2-core VM two are barely faster than one); default: half
        # the cores, 2..8, never more than there are.
        self._copy_pool = concurrent.futures.ThreadPoolExecutor(
            copy_threads, thread_name_prefix="tierd-ckpt-copy")
        self._stager = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tierd-ckpt-lazy")
        # Names (hashes) and commits staged chunks while the caller goes on.
        self._namer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tierd-ckpt-name")
        self._lock = threading.Lock()
        self._gc_lock = threading.Lock()       # pins vs. collect's deletes
        self._inflight: dict[int, SaveHandle] = {}
        self._pinned: set[bytes] = set()       # chunks of saves not yet committed
        self._collecting = 0
        self._error: BaseException | None = None
        # The writer (one per run) reclaims what a crashed save left. A reader
        # must not: it cannot see the writer's in-flight chunks.
        self.readonly = readonly
        if not readonly:
            self.c._expect_writes(ns)
            self.collect()

    def _writable(self, what: str) -> None:
        if self.readonly:
            raise InvalidArgument(f"{what}: this checkpoint manager of {self.run!r} is read-only "
                                  "(open it with readonly=False in the run's one writer)")

    # keys
    @property
    def _chunk_prefix(self) -> str:
        return f"{self.prefix}c/"

    def _chunk_key(self, h: str) -> bytes:
        return f"{self._chunk_prefix}{h}".encode()

    def _manifest_key(self, step: int) -> bytes:
        return f"{self.prefix}m/{step:020d}".encode()

    @property
    def _latest_key(self) -> bytes:
        return f"{self.prefix}latest".encode()

    def _raise_pending(self) -> None:
        with self._lock:
            err, self._error = self._error, None
        if err is not None:
            raise err

    # ---- save --------------------------------------------------------------------------

    def save(self, step: int, state, lazy: bool = False) -> SaveHandle:
        """Stage `state` in the DRAM tier and persist it in the background.

        Returns when the tensors are copied (lazy=False), or at once
        (lazy=True: do not modify them before h.wait("staged") / barrier()).
        Raises TypeError naming the path of anything unsupported.
        """
        self._raise_pending()
        self._writable("save")
        if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step < 10**20:
            raise InvalidArgument(f"step must be an integer 0 <= step < 1e20, not {step!r}")
        tensors: list[_Tensor] = []
        tree = _flatten(state, "", tensors)
        h = SaveHandle(step)
        with self._lock:
            if step in self._inflight:
                raise InvalidArgument(f"step {step} is already being saved")
            self._inflight[step] = h
        if lazy:
            # Its own thread: the copy must not queue behind the previous
            # save's background work (manifest commit, retention).
            named = self._stager.submit(self._stage_lazy, h, tensors)
            self._bg.submit(self._run_save, h, tree, tensors, named)
        else:
            try:
                named = self._copy_in(tensors)
            except BaseException as e:
                self._finish(h, e)
                raise
            h._staged.set()
            self._bg.submit(self._run_save, h, tree, tensors, named)
        return h

    def _stage_lazy(self, h: SaveHandle, tensors) -> list[concurrent.futures.Future]:
        try:
            named = self._copy_in(tensors)
        except BaseException as e:
            h._fail(e)          # wakes wait("staged") now; _run_save does the bookkeeping
            raise
        h._staged.set()
        return named

    def _run_save(self, h: SaveHandle, tree, tensors, named) -> None:
        try:
            if isinstance(named, concurrent.futures.Future):    # lazy
                named = named.result()
            hashes = [x for f in named for x in f.result()]
            self._commit(h.step, tree, tensors, hashes)
            h._persisted.set()
            self._retain()
            self._finish(h, None)
        except BaseException as e:   # surfaces on wait() and on the next call
            self._finish(h, e)

    def _finish(self, h: SaveHandle, err: BaseException | None) -> None:
        with self._lock:
            self._inflight.pop(h.step, None)
            if err is not None:
                h._fail(err)
                self._error = err
            self._unpin_if_idle_locked()

    def _unpin_if_idle_locked(self) -> None:
        """Pins live while a save is in flight or a collect runs (its manifest
        list may predate a snapshot committed meanwhile); then they go."""
        if not self._inflight and not self._collecting:
            self._pinned.clear()

    def _plan(self, tensors: list[_Tensor]) -> list[_Chunk]:
        """Chunks: big tensors cut into chunk_bytes pieces, small ones packed
        together (64-byte aligned) so thousands of them cost few objects."""
        chunks: list[_Chunk] = []
        pack = _Chunk(0, 1, [])
        for t in tensors:
            n = t.data.size
            if n < PACK_MAX:
                need = -(-n // 64) * 64
                if pack.nbytes + need > self.chunk_bytes:
                    chunks.append(pack)
                    pack = _Chunk(0, 1, [])
                t.segments = [(None, pack.nbytes, n)]    # chunk index set below
                pack.parts.append((pack.nbytes, t.data))
                pack.nbytes += need
                pack.members.append(t)
                continue
            t.segments = []
            for off in range(0, n, self.chunk_bytes):
                ln = min(self.chunk_bytes, n - off)
                t.segments.append((len(chunks), 0, ln))
                chunks.append(_Chunk(ln, t.itemsize, [(0, t.data[off:off + ln])]))
        if pack.parts:
            chunks.append(pack)
        for i, c in enumerate(chunks):
            for t in c.members:
                _, off, ln = t.segments[0]
                t.segments = [(i, off, ln)]
        return chunks

    def _copy_in(self, tensors: list[_Tensor]) -> list[concurrent.futures.Future]:
        """Copy the state into the DRAM tier: what the caller waits for.

        Each chunk is copied once, straight into arena space reserved for it
        (unnamed), by the copy threads. Naming it (the hash of its bytes) and
        committing happen on the namer thread, from the arena copy, after
        the caller goes on: returns one future per batch, of its chunk hashes.
        The namer starts early only when uncommitted batches would hold more
        than half of the arena: the rest stays free for the flusher to drain,
        so a state larger than the arena streams through instead of waiting
        on its own uncommitted pages; a state that fits is copied with the
        machine to itself.
        """
        plan = self._plan(tensors)
        arena = self.c.namespace_info(self.ns)["arena_bytes"]      # reconnects if needed
        # Batches of an eighth of the arena: few round trips, and once the
        # caller is free the namer commits the first batch soon, so the
        # flusher starts early (measured against a quarter and a sixteenth).
        cap, limit = max(arena // 8, 1), arena // 2
        failed = threading.Event()     # a failed batch: the later ones are aborted
        named: list[concurrent.futures.Future] = []
        # Reserved batches not yet handed to the namer, with their copy tasks:
        # the next batch is reserved while the copy threads fill this one, so
        # the round trips hide behind the copy.
        held: list[tuple] = []
        try:
            for batch in self._batches(plan, cap):
                need = sum(x.nbytes for x in batch)
                while held and sum(r.nbytes for r, _ in held) + need > limit:
                    r, copies = held.pop(0)
                    _results(copies)
                    named.append(self._namer.submit(self._name_batch, r, failed))
                    named[-1].result()
                r = self._reserve(batch)
                held.append((r, [self._copy_pool.submit(_fill, v, x)
                                 for v, x in zip(r.views, batch)]))
            for _, copies in held:
                _results(copies)
            named += [self._namer.submit(self._name_batch, r, failed) for r, _ in held]
            held = []
        except BaseException:
            failed.set()
            for r, copies in held:
                for f in copies:
                    f.cancel()
                # A copy still running writes into r's pages: they go back to
                # the daemon only after it stops.
                concurrent.futures.wait(copies)
                r.abort()
            raise
        return named

    @staticmethod
    def _batches(plan: list[_Chunk], cap: int):
        batch: list[_Chunk] = []
        nbytes = 0
        for c in plan:
            if batch and (nbytes + c.nbytes > cap or len(batch) >= _BATCH_CHUNKS):
                yield batch
                batch, nbytes = [], 0
            batch.append(c)
            nbytes += c.nbytes
        if batch:
            yield batch

    def _reserve(self, batch: list[_Chunk]):
        from tierd.client import _ConnectionLost
        c = self.c
        try:
            return c._reserve(self.ns, [x.nbytes for x in batch], [x.itemsize for x in batch],
                              c._gen)
        except _ConnectionLost as e:
            raise DaemonUnavailable(f"lost the connection to tierd while staging a checkpoint "
                                    f"of run {self.run!r} ({e}); save it again") from None

    def _name_batch(self, r, failed: threading.Event) -> list[str]:
        """Commit a batch of chunks under their content names: the daemon
        hashes each from its arena copy (xxh3-128; the same pass is the
        store's checksum, so the bytes are hashed once) and drops chunks
        whose name exists (unchanged tensors)."""
        from tierd.client import _ConnectionLost
        if failed.is_set():
            r.abort()
            raise InvalidArgument("an earlier batch of this save failed")
        try:
            # The names are learnt from the reply, so the commit runs under
            # _gc_lock and they are pinned before it is released: a collect
            # deletes (under the same lock) either before the daemon checks
            # whether a name exists (the chunk is then stored again) or after
            # the pin (it keeps the chunk). See collect().
            with self._gc_lock:
                hashes, _stored = r._commit(None, "staged", True, False,
                                            name_prefix=self._chunk_prefix)
                with self._lock:
                    self._pinned.update(self._chunk_key(h) for h in hashes)
            return hashes
        except BaseException as e:
            failed.set()
            r.abort()
            if isinstance(e, _ConnectionLost):
                raise DaemonUnavailable(f"lost the connection to tierd while staging a "
                                        f"checkpoint of run {self.run!r} ({e}); its copy in "
                                        "DRAM is gone: save it again") from None
            raise

    def _commit(self, step: int, tree, tensors: list[_Tensor], hashes: list[str]) -> None:
        """All chunks persisted, then manifest + latest in one catalog transaction."""
        self.c.persist(self.ns, list(dict.fromkeys(self._chunk_key(h) for h in hashes)))
        manifest = {
            "format": FORMAT, "run": self.run, "step": step, "time": time.time(),
            "chunks": hashes, "tree": tree,
            "tensors": [{"path": t.path, "dtype": t.dtype, "shape": list(t.shape),
                         "nbytes": int(t.data.size), "segments": t.segments} for t in tensors],
        }
        blob = msgpack.packb(manifest, use_bin_type=True)
        latest = self.latest_persisted_step()
        items = [(self._manifest_key(step), blob)]
        if latest is None or step >= latest:
            items.append((self._latest_key, str(step).encode()))
        self.c.put_many(self.ns, items, durability="persisted", atomic=True)

    def barrier(self) -> None:
        """Wait until every save so far is staged (tensors may be modified)."""
        with self._lock:
            handles = list(self._inflight.values())
        for h in handles:
            h.wait("staged")
        self._raise_pending()

    # ---- reading -----------------------------------------------------------------------

    def steps(self) -> list[int]:
        """Steps of the persisted snapshots, ascending."""
        self._raise_pending()
        pre = f"{self.prefix}m/".encode()
        return sorted(int(k[len(pre):]) for k in self.c.list(self.ns, pre))

    def latest_persisted_step(self) -> int | None:
        try:
            with self.c.get(self.ns, self._latest_key) as ls:
                return int(ls.tobytes())
        except NotFound:
            return None

    def latest(self) -> int | None:
        """The newest persisted step (None if there is none)."""
        self._raise_pending()
        return self.latest_persisted_step()

    def manifest(self, step: int | None = None) -> dict:
        if step is None:
            step = self.latest()
            if step is None:
                raise NotFound(f"run {self.run!r} has no persisted checkpoint")
        try:
            with self.c.get(self.ns, self._manifest_key(step)) as ls:
                return msgpack.unpackb(ls.tobytes(), raw=False)
        except NotFound:
            raise NotFound(f"run {self.run!r} has no persisted checkpoint at step {step}; "
                           f"have {self.steps()}") from None

    def load(self, step: int | None = None, names: Iterable[str] | None = None, *,
             as_torch: bool = False):
        """The state of `step` (default: latest persisted), verified, as saved.

        names: tensor paths ("model.w", or a prefix "model") to load; other
        tensors are left out (dict entries dropped, list slots None).
        """
        self._raise_pending()
        m = self.manifest(step)
        tensors = m["tensors"]
        if names is not None:
            wanted = [n for n in names]
            sel = [i for i, t in enumerate(tensors)
                   if any(t["path"] == n or t["path"].startswith(n + ".") for n in wanted)]
            unknown = [n for n in wanted if not any(
                t["path"] == n or t["path"].startswith(n + ".") for t in tensors)]
            if unknown:
                raise NotFound(f"no tensor {unknown[0]!r} in step {m['step']} of {self.run!r}")
        else:
            sel = list(range(len(tensors)))
        # Fresh memory is the slow part of a restore on a VM (see
        # tierd.hostmem): large tensors get mappings of their own, faulted
        # in by a populator thread from now on, while the daemon reads.
        outs = {i: hostmem.fresh_buffer(tensors[i]["nbytes"]) for i in sel}
        need: dict[int, list] = {}
        for i in sel:
            pos = 0
            for ci, off, ln in tensors[i]["segments"]:
                need.setdefault(ci, []).append((i, pos, off, ln))
                pos += ln
        order = sorted(need)
        ranges, range_of = [], {}
        for ci in order:
            for ti, pos, _off, ln in need[ci]:
                range_of[(ci, ti, pos)] = len(ranges)
                ranges.append((outs[ti], pos, pos + ln))
        per = min(max(self.c.namespace_info(self.ns)["arena_bytes"] // 4, 1), _LOAD_BATCH_MAX)
        parts: list[list[int]] = []
        held = 0
        for ci in order:
            ln = sum(x[3] for x in need[ci])
            if not parts or held + ln > per:
                parts.append([])
                held = 0
            parts[-1].append(ci)
            held += ln

        def copy_out(ci: int, src: np.ndarray, pop: hostmem.Populator) -> None:
            for ti, pos, off, ln in need[ci]:
                pop.ready(range_of[(ci, ti, pos)])
                outs[ti][pos:pos + ln] = src[off:off + ln]
        keys_of = lambda part: [self._chunk_key(m["chunks"][ci]) for ci in part]  # noqa: E731
        ahead = None
        with hostmem.Populator(ranges) as pop:
            for n, part in enumerate(parts):
                if ahead is not None:
                    ahead.result()             # the next batch is in DRAM now (or raise)
                leases = self.c.get_many(self.ns, keys_of(part))
                # While this batch is copied out, the daemon already reads the
                # next one from NVMe into DRAM.
                ahead = (self.c.prefetch(self.ns, keys_of(parts[n + 1]))
                         if n + 1 < len(parts) else None)
                try:
                    for f in [self._copy_pool.submit(copy_out, ci, ls.array, pop)
                              for ci, ls in zip(part, leases)]:
                        f.result()
                finally:
                    for ls in leases:
                        ls.release()
            if ahead is not None:
                ahead.result()
        arrays = {ti: _rebuild(outs[ti], tensors[ti], as_torch) for ti in sel}
        return _unflatten(m["tree"], arrays)

    def open(self, step: int | None = None, names: Iterable[str] | None = None) -> "Snapshot":
        """A zero-copy view of a snapshot: `with ck.open() as snap: snap.state`.

        Every tensor is a read-only numpy view straight into the daemon's
        shared memory (verified on the way in from NVMe, served from DRAM
        when still hot): small tensors packed together are slices of their
        chunk, and a tensor split over several chunks has those chunks'
        pages mapped side by side in this process (no copy; see
        tierd.stitch). The views are valid until the snapshot is closed (the
        leases are released then). The whole snapshot must fit in the
        namespace's DRAM arena. For writable arrays that outlive the
        snapshot, use load().
        """
        self._raise_pending()
        m = self.manifest(step)
        tensors = m["tensors"]
        sel = list(range(len(tensors))) if names is None else [
            i for i, t in enumerate(tensors)
            if any(t["path"] == n or t["path"].startswith(n + ".") for n in names)]
        need = sorted({seg[0] for i in sel for seg in tensors[i]["segments"]})
        leases = self.c.get_many(self.ns, [self._chunk_key(m["chunks"][ci]) for ci in need])
        by_chunk = dict(zip(need, leases))
        try:
            arrays = {}
            for i in sel:
                t = tensors[i]
                segs = t["segments"]
                if len(segs) == 1:
                    ci, off, ln = segs[0]
                    raw = by_chunk[ci].array[off:off + ln]      # zero-copy, read-only
                else:
                    raw = self._joined(segs, by_chunk)
                arrays[i] = _to_numpy(raw, t["dtype"], tuple(t["shape"]))
            state = _unflatten(m["tree"], arrays)
        except BaseException:
            for ls in leases:
                ls.release()
            raise
        return Snapshot(m["step"], state, leases)

    def _joined(self, segs: list, by_chunk: dict) -> np.ndarray:
        """The bytes of a tensor stored over several chunks, read-only.

        Cut from whole chunks (as save does): those chunks' arena pages are
        mapped side by side in this process, no copy. Otherwise (an older
        layout) the pieces are copied together.
        """
        if all(off == 0 for _, off, _ in segs):
            try:
                return self.c._stitch(self.ns, [(by_chunk[ci], ln) for ci, _, ln in segs])
            except InvalidArgument:
                pass        # not whole pages: copy below
        raw = np.empty(sum(ln for _, _, ln in segs), dtype=np.uint8)
        pos = 0
        for ci, off, ln in segs:
            raw[pos:pos + ln] = by_chunk[ci].array[off:off + ln]
            pos += ln
        raw.flags.writeable = False
        return raw

    # ---- deleting ------------------------------------------------------------------------

    def delete(self, step: int) -> None:
        """Remove one snapshot; `latest` moves back if it pointed there."""
        self._raise_pending()
        self._writable("delete")
        with self._lock:
            if step in self._inflight:
                raise InvalidArgument(f"step {step} is being saved; wait for it first")
        steps = self.steps()
        if step not in steps:
            raise NotFound(f"run {self.run!r} has no checkpoint at step {step}")
        if self.latest_persisted_step() == step:
            older = [s for s in steps if s < step]
            if older:   # move latest first: it never points at a missing snapshot
                self.c.put(self.ns, self._latest_key, str(older[-1]).encode(),
                           durability="persisted")
            else:
                self.c.delete_many(self.ns, [self._latest_key])
        self.c.delete_many(self.ns, [self._manifest_key(step)])
        self.collect()

    def _retain(self) -> None:
        steps = self.steps()
        latest = self.latest_persisted_step()
        drop = [s for s in steps[:-self.keep_last] if s != latest]
        if drop:
            self.c.delete_many(self.ns, [self._manifest_key(s) for s in drop])
            self.collect()

    def collect(self) -> int:
        """Delete chunks no manifest references (reference counts derived from
        the manifests, like free space from the catalog); returns how many."""
        self._writable("collect")
        # While a collect runs, pins are not cleared (_finish): a save that
        # commits its manifest after we read the manifests keeps its chunks
        # pinned until we are done.
        with self._lock:
            self._collecting += 1
        try:
            return self._collect()
        finally:
            with self._lock:
                self._collecting -= 1
                self._unpin_if_idle_locked()

    def _get_present(self, keys: list[bytes]) -> list[bytes]:
        """The bytes of those of `keys` that still exist (a manifest listed a
        moment ago may be gone: retention or delete ran in between)."""
        try:
            leases = self.c.get_many(self.ns, keys)
        except NotFound:
            leases = []
            for k in keys:
                try:
                    leases.append(self.c.get(self.ns, k))
                except NotFound:
                    pass
        try:
            return [ls.tobytes() for ls in leases]
        finally:
            for ls in leases:
                ls.release()

    def _collect(self) -> int:
        pre = self._chunk_prefix.encode()
        chunks = set(self.c.list(self.ns, pre))
        if not chunks:
            return 0
        referenced = set()
        mpre = f"{self.prefix}m/".encode()
        mkeys = list(self.c.list(self.ns, mpre))
        for i in range(0, len(mkeys), 64):
            for blob in self._get_present(mkeys[i:i + 64]):
                m = msgpack.unpackb(blob, raw=False)
                referenced.update(self._chunk_key(h) for h in m["chunks"])
        deleted = 0
        garbage = sorted(chunks - referenced)
        for i in range(0, len(garbage), 1024):
            # The pins are read and the keys deleted under _gc_lock, which a
            # save takes to pin its chunks before the daemon's if_absent check:
            # a chunk is either pinned here (kept) or deleted before that check
            # (then stored again).
            with self._gc_lock:
                with self._lock:
                    part = [k for k in garbage[i:i + 1024] if k not in self._pinned]
                if part:
                    self.c.delete_many(self.ns, part)
            deleted += len(part)
        return deleted

    def export(self, step: int | None, path, progress=None) -> dict:
        """Write snapshot `step` (None: latest) to a .safetensors file."""
        from tierd.safetensors_io import export_snapshot
        return export_snapshot(self, step, path, progress)

    def import_(self, step: int, path, progress=None) -> dict:
        """Save a .safetensors file as snapshot `step`; returns once persisted."""
        from tierd.safetensors_io import import_snapshot
        return import_snapshot(self, step, path, progress)

    def close(self) -> None:
        self._stager.shutdown(wait=True)
        self._bg.shutdown(wait=True)
        self._copy_pool.shutdown(wait=True)
        self._namer.shutdown(wait=True)
        self._raise_pending()

    def __enter__(self) -> "CheckpointManager":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
