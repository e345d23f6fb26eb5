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
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import msgpack
import numpy as np

from tierd.errors import InvalidArgument, NotFound, TierdError

FORMAT = 1
PACK_MAX = 1 << 20            # tensors below this are packed together into shared chunks
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
                 chunk_bytes: int = 16 << 20, readonly: bool = False) -> None:
        if not isinstance(run, str) or not _RUN.match(run):
            raise InvalidArgument(f"run name {run!r}: use 1-128 letters, digits, '_', '.', '-'")
        if not isinstance(keep_last, int) or keep_last < 1:
            raise InvalidArgument("keep_last must be >= 1 (the last persisted snapshot is "
                                  "never removed)")
        if not (1 << 20) <= chunk_bytes <= (256 << 20) or chunk_bytes % 4096:
            raise InvalidArgument("chunk_bytes must be 1 MiB..256 MiB, a multiple of 4 KiB")
        import xxhash   # the daemon's hash; needed only by checkpoints, not by `import tierd`
        self._hash = xxhash.xxh3_128_hexdigest
        self.c = client
        self.run = run
        self.ns = ns
        self.keep_last = keep_last
        self.chunk_bytes = chunk_bytes
        self.prefix = f"ckpt/{run}/"
        self._bg = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"tierd-ckpt-{run}")
        self._hash_pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="tierd-hash")
        self._lock = threading.Lock()
        self._inflight: dict[int, SaveHandle] = {}
        self._pinned: set[bytes] = set()       # chunks of saves not yet committed
        self._error: BaseException | None = None
        # The writer (one per run) reclaims what a crashed save left. A reader
        # must not: it cannot see the writer's in-flight chunks.
        self.readonly = readonly
        if not readonly:
            self.collect()

    def _writable(self, what: str) -> None:
        if self.readonly:
            raise InvalidArgument(f"{what}: this checkpoint manager of {self.run!r} is read-only "
                                  "(open it with readonly=False in the run's one writer)")

    # keys
    def _chunk_key(self, h: str) -> bytes:
        return f"{self.prefix}c/{h}".encode()

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
            self._bg.submit(self._run_save, h, tree, tensors, True)
        else:
            try:
                chunks = self._stage(tensors)
            except BaseException as e:
                self._finish(h, e)
                raise
            h._staged.set()
            self._bg.submit(self._run_save, h, tree, tensors, False, chunks)
        return h

    def _run_save(self, h: SaveHandle, tree, tensors, lazy: bool, chunks=None) -> None:
        try:
            if lazy:
                chunks = self._stage(tensors)
                h._staged.set()
            self._commit(h.step, tree, tensors, chunks)
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
            if not self._inflight:
                self._pinned.clear()

    def _plan(self, tensors: list[_Tensor]) -> list[tuple[np.ndarray, int]]:
        """Chunks (bytes, itemsize): big tensors cut into chunk_bytes pieces,
        small ones packed together so thousands of them cost few objects."""
        chunks: list[tuple[np.ndarray, int]] = []
        pack: list[_Tensor] = []
        pack_bytes = 0

        def flush_pack():
            nonlocal pack, pack_bytes
            if not pack:
                return
            buf = np.zeros(pack_bytes, dtype=np.uint8)   # zeroed padding: stable hashes
            off = 0
            for t in pack:
                buf[off:off + t.data.size] = t.data
                t.segments = [(len(chunks), off, t.data.size)]
                off += -(-t.data.size // 64) * 64
            chunks.append((buf, 1))
            pack, pack_bytes = [], 0

        for t in tensors:
            n = t.data.size
            if n < PACK_MAX:
                need = -(-n // 64) * 64
                if pack_bytes + need > self.chunk_bytes:
                    flush_pack()
                pack.append(t)
                pack_bytes += need
                continue
            t.segments = []
            for off in range(0, n, self.chunk_bytes):
                ln = min(self.chunk_bytes, n - off)
                t.segments.append((len(chunks), 0, ln))
                chunks.append((t.data[off:off + ln], t.itemsize))
        flush_pack()
        return chunks

    def _stage(self, tensors: list[_Tensor]) -> list[str]:
        """Copy the new chunks into the DRAM tier (staged); returns every chunk's hash."""
        plan = self._plan(tensors)
        # Batches of ~4 chunks: while batch k is copied into the arena, the
        # pool hashes batch k+1 (xxh3 releases the GIL), so hashing hides
        # behind the copy instead of adding to the time the trainer blocks.
        batches, cur, nb = [], [], 0
        for item in plan:
            cur.append(item)
            nb += item[0].size
            if nb >= 4 * self.chunk_bytes or len(cur) >= 256:
                batches.append(cur)
                cur, nb = [], 0
        if cur:
            batches.append(cur)

        def hash_batch(b):
            return [self._hash(buf) for buf, _ in b]

        hashes: list[str] = []
        seen: set[bytes] = set()
        nxt = self._hash_pool.submit(hash_batch, batches[0]) if batches else None
        for n, b in enumerate(batches):
            hs = nxt.result()
            nxt = self._hash_pool.submit(hash_batch, batches[n + 1]) if n + 1 < len(batches) else None
            hashes.extend(hs)
            keys = [self._chunk_key(h) for h in hs]
            with self._lock:
                self._pinned.update(keys)
            # Content addressing: a chunk already stored (an unchanged
            # tensor) is not written again.
            uniq = [k for k in dict.fromkeys(keys) if k not in seen]
            have = dict(zip(uniq, self.c.contains_many(self.ns, uniq))) if uniq else {}
            todo = []
            for k, (buf, itemsize) in zip(keys, b):
                if k in have and not have[k] and k not in seen:
                    todo.append((k, buf, itemsize))
                seen.add(k)
            if todo:
                self.c.put_many(self.ns, todo, durability="staged")
        return hashes

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
        outs = {i: np.empty(tensors[i]["nbytes"], dtype=np.uint8) for i in sel}
        need: dict[int, list] = {}
        for i in sel:
            pos = 0
            for ci, off, ln in tensors[i]["segments"]:
                need.setdefault(ci, []).append((i, pos, off, ln))
                pos += ln
        order = sorted(need)
        per = max(4, 1)                    # chunks per request (64 MiB with 16 MiB chunks)
        parts = [order[i:i + per] for i in range(0, len(order), per)]
        keys_of = lambda part: [self._chunk_key(m["chunks"][ci]) for ci in part]  # noqa: E731
        ahead = None
        for n, part in enumerate(parts):
            if ahead is not None:
                ahead.result()             # the next batch is in DRAM now (or raise)
            leases = self.c.get_many(self.ns, keys_of(part))
            # While this batch is copied out (fresh memory: page faults), the
            # daemon already reads the next one from NVMe into DRAM.
            ahead = self.c.prefetch(self.ns, keys_of(parts[n + 1])) if n + 1 < len(parts) else None
            try:
                for ci, ls in zip(part, leases):
                    src = ls.array
                    for ti, pos, off, ln in need[ci]:
                        outs[ti][pos:pos + ln] = src[off:off + ln]
            finally:
                for ls in leases:
                    ls.release()
        if ahead is not None:
            ahead.result()
        arrays = {ti: _rebuild(outs[ti], tensors[ti], as_torch) for ti in sel}
        return _unflatten(m["tree"], arrays)

    def open(self, step: int | None = None, names: Iterable[str] | None = None) -> "Snapshot":
        """A zero-copy view of a snapshot: `with ck.open() as snap: snap.state`.

        Tensors stored in one piece are read-only numpy views straight into
        the daemon's shared memory (verified on the way in from NVMe, served
        from DRAM when still hot); tensors split over several chunks, or
        packed with others, are views as well when their chunk holds them
        whole, and assembled copies otherwise. The views are valid until the
        snapshot is closed (the leases are released then). The whole
        snapshot must fit in the namespace's DRAM arena.
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
                    raw = np.empty(t["nbytes"], dtype=np.uint8)
                    pos = 0
                    for ci, off, ln in segs:
                        raw[pos:pos + ln] = by_chunk[ci].array[off:off + ln]
                        pos += ln
                    raw.flags.writeable = False
                arrays[i] = _to_numpy(raw, t["dtype"], tuple(t["shape"]))
            state = _unflatten(m["tree"], arrays)
        except BaseException:
            for ls in leases:
                ls.release()
            raise
        return Snapshot(m["step"], state, leases)

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
        pre = f"{self.prefix}c/".encode()
        chunks = set(self.c.list(self.ns, pre))
        if not chunks:
            return 0
        referenced = set()
        mpre = f"{self.prefix}m/".encode()
        mkeys = list(self.c.list(self.ns, mpre))
        for i in range(0, len(mkeys), 64):
            leases = self.c.get_many(self.ns, mkeys[i:i + 64])
            try:
                for ls in leases:
                    m = msgpack.unpackb(ls.tobytes(), raw=False)
                    referenced.update(self._chunk_key(h) for h in m["chunks"])
            finally:
                for ls in leases:
                    ls.release()
        with self._lock:
            referenced |= self._pinned
        garbage = sorted(chunks - referenced)
        for i in range(0, len(garbage), 1024):
            self.c.delete_many(self.ns, garbage[i:i + 1024])
        return len(garbage)

    def export(self, step: int | None, path, progress=None) -> dict:
        """Write snapshot `step` (None: latest) to a .safetensors file."""
        from tierd.safetensors_io import export_snapshot
        return export_snapshot(self, step, path, progress)

    def import_(self, step: int, path, progress=None) -> dict:
        """Save a .safetensors file as snapshot `step`; returns once persisted."""
        from tierd.safetensors_io import import_snapshot
        return import_snapshot(self, step, path, progress)

    def close(self) -> None:
        self._bg.shutdown(wait=True)
        self._hash_pool.shutdown(wait=True)
        self._raise_pending()

    def __enter__(self) -> "CheckpointManager":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
