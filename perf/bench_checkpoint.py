#!/usr/bin/env python3
"""Issue #4: checkpointing a training state, tierd against the usual tools.

A training state of --size bytes (bf16 weights ~ N(0, 0.02), fp32 exp_avg ~
N(0, 1e-3), fp32 exp_avg_sq ~ |N(0, 1e-6)|, in a few hundred tensors shaped
like a transformer's: embedding, per layer q/k/v/o, mlp up/down, norms) is
saved and restored by each tool, with the same durability for all of them
(every file and the directory fsynced before a save counts as durable).

Tools (one small adapter each, `save(state, dir) -> (blocking_s, durable_s)`,
`load(dir) -> state`):
    torch.save        torch.save to one file, then fsync file + directory
    safetensors       safetensors.torch.save_file, then fsync file + directory
    dcp.save          torch.distributed.checkpoint.save (single process), fsync
    dcp.async_save    ... async_save: blocking = until it returns; durable =
                      until its future completes + fsync
    tierd             tierd checkpoints (a private daemon): blocking = until
                      ck.save() returns (state staged in DRAM); durable =
                      until h.wait("persisted")
    tierd-lazy        the same with save(lazy=True); h.wait("staged") is
                      timed too (the next optimizer step waits for it)
Baselines, same run: a plain memcpy of the state (np.copyto into
preallocated, pre-touched arrays), fio sequential write (io_uring, direct,
iodepth 16, end_fsync) and read of the same byte count on the same
filesystem.

Per tool and repetition (tools interleaved within a repetition; page cache
dropped before every measured operation when running as root):
  1. a save while a numpy matmul loop runs in a separate process: its
     iterations/s during the save's durable window vs. the 1.5 s just before
     (the same loop alone) -> % slowdown;
  2. a timed save on a quiet machine -> blocking, time until durable;
  3. cold restore: drop the page cache (tierd: restart its daemon too, so
     its DRAM tier is cold), time load() plus a touch of every page of the
     result, then verify it byte for byte (untimed).
Bytes on disk: allocated bytes of the tool's files (du); tierd: the
namespace's nvme_used with only the latest snapshot kept.

    python perf/bench_checkpoint.py                         # 1 GiB, 5 runs
    python perf/bench_checkpoint.py --quick                 # 128 MiB, 2 runs
    python perf/bench_checkpoint.py --runs 7 --record perf/RESULTS.md
    python perf/bench_checkpoint.py --tools tierd,torch.save --quick
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for _p in ("perf", "client", "daemon"):
    _d = os.path.join(REPO, _p)
    if _d not in sys.path:
        sys.path.insert(0, _d)

import numpy as np  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
NS = "default"
ALL_TOOLS = ("torch.save", "safetensors", "dcp.save", "dcp.async_save", "tierd", "tierd-lazy")
# Not run by default: tierd with its DRAM arena kept in 4 KiB pages, for an
# A/B of the huge-page arena inside one run (--tools tierd,tierd-4k).
EXTRA_TOOLS = ("tierd-4k",)
TIERD_TOOLS = ("tierd", "tierd-lazy", "tierd-4k")
BAR_BLOCKING = 1.5       # blocking <= 1.5x memcpy of the state
BAR_DURABLE = 1.2        # durable <= 1.2x fio sequential write of the same bytes
BAR_RESTORE = 0.8        # restore bandwidth >= 0.8x fio sequential read


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_size(s: str) -> int:
    s = s.strip().lower().rstrip("b")
    mult = {"k": 1 << 10, "ki": 1 << 10, "m": MiB, "mi": MiB, "g": GiB, "gi": GiB}
    for suf in sorted(mult, key=len, reverse=True):
        if s.endswith(suf):
            return int(float(s[:-len(suf)]) * mult[suf])
    return int(s)


def fmt_size(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / MiB:.0f} MiB"


def have(mod: str) -> bool:
    try:
        __import__(mod)
        return True
    except Exception:  # noqa: BLE001 - absent or broken: not usable either way
        return False


def versions() -> dict:
    out = {}
    for mod in ("torch", "safetensors", "ml_dtypes", "numpy", "tierd"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - absent or broken: say so
            out[mod] = "not installed"
    return out


# ---- page cache, fsync, du ------------------------------------------------------------


_DROP_OK: bool | None = None


def drop_caches() -> bool:
    """sync; echo 3 > /proc/sys/vm/drop_caches. False (once logged) when not permitted."""
    global _DROP_OK
    os.sync()
    if _DROP_OK is False:
        return False
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        _DROP_OK = True
    except OSError as e:
        log(f"bench_checkpoint: cannot drop the page cache ({e}); restores are NOT cold")
        _DROP_OK = False
    return _DROP_OK


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(d: str) -> None:
    """fsync every file under d, every directory bottom-up, and d's parent."""
    for root, dirs, files in os.walk(d, topdown=False):
        for name in files:
            fsync_path(os.path.join(root, name))
        fsync_path(root)
    fsync_path(os.path.dirname(os.path.abspath(d)))


def du(d: str) -> tuple[int, int]:
    """(allocated bytes, apparent bytes) of the files under d."""
    alloc = app = 0
    for root, _dirs, files in os.walk(d):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            alloc += st.st_blocks * 512
            app += st.st_size
    return alloc, app


# ---- the training state ---------------------------------------------------------------


def model_shapes(size: int) -> tuple[list[tuple[str, tuple[int, ...]]], dict]:
    """Transformer-like parameter shapes whose state (10 B/param) totals ~size bytes."""
    params = size // 10                      # bf16 weight + 2 x fp32 moments
    layers = 12
    d = max(64, int((params / (32 + 12 * layers)) ** 0.5) // 64 * 64)
    per_layer = 12 * d * d + 4 * d
    vocab = max(256, (params - layers * per_layer - d) // d)
    shapes = [("embed.weight", (vocab, d))]
    for i in range(layers):
        p = f"layers.{i}."
        shapes += [(p + "attn_norm.weight", (d,)), (p + "attn_norm.bias", (d,)),
                   (p + "attn.q.weight", (d, d)), (p + "attn.k.weight", (d, d)),
                   (p + "attn.v.weight", (d, d)), (p + "attn.o.weight", (d, d)),
                   (p + "mlp_norm.weight", (d,)), (p + "mlp_norm.bias", (d,)),
                   (p + "mlp.up.weight", (4 * d, d)), (p + "mlp.down.weight", (d, 4 * d))]
    shapes.append(("final_norm.weight", (d,)))
    return shapes, {"d_model": d, "layers": layers, "vocab": vocab}


def bf16_dtype():
    try:
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    except ImportError:
        return None


def make_state(size: int, use_torch: bool, seed: int = 0) -> tuple[dict, dict]:
    """{"model": {name: bf16}, "optim": {name: {"exp_avg", "exp_avg_sq"}}, "step": int}.

    Torch tensors when use_torch (the same objects go to every tool), else
    numpy arrays (bf16 via ml_dtypes; raw uint16 bits when it is missing).
    """
    shapes, info = model_shapes(size)
    rng = np.random.default_rng(seed)
    bf16 = bf16_dtype()
    model, optim = {}, {}
    for name, shape in shapes:
        w32 = rng.standard_normal(shape, dtype=np.float32)
        w32 *= 0.02
        # bf16 bits = the top half of the fp32 bits, rounded to nearest even.
        u = w32.view(np.uint32)
        bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        del w32, u
        m = rng.standard_normal(shape, dtype=np.float32)
        m *= 1e-3
        v = rng.standard_normal(shape, dtype=np.float32)
        np.abs(v, out=v)
        v *= 1e-6
        if use_torch:
            import torch
            model[name] = torch.from_numpy(bits).view(torch.bfloat16)
            optim[name] = {"exp_avg": torch.from_numpy(m), "exp_avg_sq": torch.from_numpy(v)}
        else:
            model[name] = bits.view(bf16) if bf16 is not None else bits
            optim[name] = {"exp_avg": m, "exp_avg_sq": v}
    state = {"model": model, "optim": optim, "step": 0}
    info.update(tensors=3 * len(shapes), bytes=state_bytes(state),
                kind="torch" if use_torch else ("numpy+ml_dtypes" if bf16 is not None
                                                else "numpy (bf16 as uint16 bits)"))
    return state, info


def as_bytes(t) -> np.ndarray:
    """A flat uint8 numpy view of a tensor/array (no copy)."""
    if isinstance(t, np.ndarray):
        return np.ascontiguousarray(t).reshape(-1).view(np.uint8)
    import torch
    if isinstance(t, torch.Tensor):
        return t.detach().contiguous().view(-1).view(torch.uint8).numpy()
    arr = getattr(t, "array", None)          # a lease-like object
    if arr is not None:
        return as_bytes(arr() if callable(arr) else arr)
    return np.asarray(t).reshape(-1).view(np.uint8)


def leaves(state, path=""):
    """(path, tensor) for every tensor/array in a nested state, in a stable order."""
    if isinstance(state, dict):
        for k in sorted(state):
            yield from leaves(state[k], f"{path}.{k}" if path else str(k))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            yield from leaves(v, f"{path}.{i}")
    elif isinstance(state, (int, float, str, bytes, bool)) or state is None:
        return
    else:
        yield path, state


def state_bytes(state) -> int:
    return sum(as_bytes(t).nbytes for _p, t in leaves(state))


def mutate(state, step: int) -> None:
    """Stand-in for an optimizer step: change one byte in every 4 KiB of every tensor.

    Every chunk of every tensor differs from the previous saves (so nothing
    is deduplicated across steps); only the low mantissa bits of the low
    byte change, so no NaN/Inf appears.
    """
    val = np.uint8((step * 37 + 11) & 0x7F)
    for _p, t in leaves(state):
        b = as_bytes(t)
        b[::4096] = val
    state["step"] = step


def touch(state) -> int:
    """Read one byte of every 4 KiB page of a loaded state (so lazy loads pay for I/O)."""
    s = 0
    for _p, t in leaves(state):
        b = as_bytes(t)
        s += int(b[::4096].sum(dtype=np.uint64)) if b.size else 0
    return s


def verify(ref, got) -> None:
    a, b = dict(leaves(ref)), dict(leaves(got))
    if a.keys() != b.keys():
        missing, extra = sorted(a.keys() - b.keys())[:3], sorted(b.keys() - a.keys())[:3]
        raise AssertionError(f"restored state differs in tensors: missing {missing}, extra {extra}")
    for p in a:
        if not np.array_equal(as_bytes(a[p]), as_bytes(b[p])):
            raise AssertionError(f"restored tensor {p} differs")
        if tuple(np.shape(a[p])) != tuple(getattr(b[p], "shape", np.shape(b[p]))):
            raise AssertionError(f"restored tensor {p} has shape {b[p].shape}, want {a[p].shape}")
    if got.get("step") != ref.get("step"):
        raise AssertionError(f"restored step {got.get('step')} != {ref.get('step')}")


def flatten(state) -> dict:
    return {p: t for p, t in leaves(state)}


def unflatten(flat: dict, step) -> dict:
    out: dict = {"step": step}
    for p, t in flat.items():
        cur = out
        parts = p.split(".")
        # model.<name with dots> / optim.<name with dots>.<exp_avg|exp_avg_sq>
        if parts[0] == "model":
            cur.setdefault("model", {})[".".join(parts[1:])] = t
        else:
            cur.setdefault("optim", {}).setdefault(".".join(parts[1:-1]), {})[parts[-1]] = t
    return out


# ---- the adapters ---------------------------------------------------------------------


class Tool:
    name = "?"
    needs: tuple[str, ...] = ()

    def available(self) -> str | None:
        """None, or why this tool cannot run here."""
        missing = [m for m in self.needs if not have(m)]
        return f"{', '.join(missing)} not installed" if missing else None

    def setup(self, root: str, state_size: int) -> None:
        self.root = root

    def save(self, state, d: str) -> tuple[float, float]:
        raise NotImplementedError

    def load(self, d: str):
        raise NotImplementedError

    def before_load(self) -> None:
        """Make the next load cold (beyond the page cache, which the caller drops)."""

    def disk_bytes(self, d: str) -> tuple[int, int]:
        return du(d)

    def close(self) -> None:
        pass


class TorchSave(Tool):
    name, needs = "torch.save", ("torch",)

    def save(self, state, d):
        import torch
        os.makedirs(d)
        t0 = time.perf_counter()
        with open(os.path.join(d, "state.pt"), "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        fsync_tree(d)
        t = time.perf_counter() - t0
        return t, t

    def load(self, d):
        import torch
        return torch.load(os.path.join(d, "state.pt"), weights_only=True)


class SafetensorsSave(Tool):
    name, needs = "safetensors", ("torch", "safetensors")

    def save(self, state, d):
        from safetensors.torch import save_file
        os.makedirs(d)
        t0 = time.perf_counter()
        save_file(flatten(state), os.path.join(d, "state.safetensors"),
                  metadata={"step": str(state["step"])})
        fsync_tree(d)
        t = time.perf_counter() - t0
        return t, t

    def load(self, d):
        from safetensors import safe_open
        from safetensors.torch import load_file
        path = os.path.join(d, "state.safetensors")
        flat = load_file(path)
        with safe_open(path, "pt") as f:
            step = int(f.metadata()["step"])
        return unflatten(flat, step)


class DcpSave(Tool):
    name, needs = "dcp.save", ("torch",)

    def setup(self, root, state_size):
        super().setup(root, state_size)
        self.template = None

    def save(self, state, d):
        import torch.distributed.checkpoint as dcp
        t0 = time.perf_counter()
        dcp.save(state, checkpoint_id=d)
        fsync_tree(d)
        t = time.perf_counter() - t0
        return t, t

    def load(self, d):
        import torch.distributed.checkpoint as dcp
        # DCP loads in place into a state of the right shapes (allocated, untouched).
        out = self.template_fn()
        dcp.load(out, checkpoint_id=d)
        return out

    def prepare_load(self, ref) -> None:
        import torch

        def fn():
            def alloc(x):
                if isinstance(x, dict):
                    return {k: alloc(v) for k, v in x.items()}
                if isinstance(x, torch.Tensor):
                    return torch.empty_like(x)
                return 0 if isinstance(x, int) else x
            return alloc(ref)
        self.template_fn = fn


class DcpAsyncSave(DcpSave):
    name, needs = "dcp.async_save", ("torch",)

    def save(self, state, d):
        import torch.distributed.checkpoint as dcp
        t0 = time.perf_counter()
        fut = dcp.async_save(state, checkpoint_id=d)
        t1 = time.perf_counter()
        fut.result()
        fsync_tree(d)
        return t1 - t0, time.perf_counter() - t0


class TierdCkpt(Tool):
    """tierd checkpoints through a private daemon (DRAM 2.5x, store 5x the state)."""
    name, needs, lazy = "tierd", ("tierd",), False
    huge_pages = True

    def available(self):
        why = super().available()
        if why:
            return why
        import tierd
        if not hasattr(tierd.Client, "checkpoints"):
            return "tierd.Client has no checkpoints() (the checkpoint API has not landed)"
        return None

    def setup(self, root, state_size):
        from tierd_perf.tierd_engine import Daemon
        super().setup(root, state_size)
        self.daemon = Daemon(capacity=5 * state_size + 256 * MiB,
                             dram=int(2.5 * state_size) + 64 * MiB,
                             root=os.path.join(root, "daemon"), log_level="warning",
                             prewrite=True, huge_pages=self.huge_pages)
        self.daemon.start()
        self.run = "bench-lazy" if self.lazy else "bench"
        self.client = self.daemon.connect()
        self.ck = self.client.checkpoints(self.run, keep_last=3)
        self.backings: set[str] = set()
        self.keep_warm: set[str] = set()
        self._note_backing()
        self.staged_s: list[float] = []
        self.as_torch = False

    def prepare_load(self, ref) -> None:
        self.as_torch = any(type(t).__module__.startswith("torch") for _p, t in leaves(ref))

    def _close_client(self):
        try:
            self.ck.close()
        finally:
            self.client.close()

    def save(self, state, d):
        step = int(state["step"])
        t0 = time.perf_counter()
        h = self.ck.save(step, state, lazy=self.lazy)
        t1 = time.perf_counter()
        h.wait("staged")
        t2 = time.perf_counter()
        h.wait("persisted", timeout=600)
        t3 = time.perf_counter()
        self.staged_s.append(t2 - t0)
        return t1 - t0, t3 - t0

    def before_load(self):
        self._close_client()
        self.daemon.stop()           # SIGTERM: flushes, drops the DRAM tier
        self.daemon.start()
        self.client = self.daemon.connect()
        self.ck = self.client.checkpoints(self.run, keep_last=3)
        self._note_backing()

    def _note_backing(self) -> None:
        """What the daemon's arena is made of this start (huge pages or not)."""
        st = self.client.status()
        self.backings.add(st["namespaces"][NS]["backing"])
        dram = st.get("dram") or {}
        why = f" ({dram['keep_warm_why']})" if dram.get("keep_warm_why") else ""
        self.keep_warm.add(("on" if dram.get("keep_warm") else "off") + why)

    def load(self, d):
        # Torch tensors back when torch tensors were saved (as the peers return).
        return self.ck.load(as_torch=self.as_torch) if self.as_torch else self.ck.load()

    def open(self):
        """The zero-copy restore: read-only numpy views of the daemon's memory."""
        return self.ck.open()

    def disk_bytes(self, d):
        steps = self.ck.steps()
        for s in steps[:-1]:
            self.ck.delete(s)
        ns = self.client.status()["namespaces"][NS]
        used = int(ns.get("nvme_used", 0))
        return used, used

    def close(self):
        try:
            self._close_client()
        finally:
            self.daemon.stop()


class TierdLazy(TierdCkpt):
    name, lazy = "tierd-lazy", True


class Tierd4k(TierdCkpt):
    """tierd with namespaces.default.huge_pages = false (4 KiB arena pages)."""
    name, huge_pages = "tierd-4k", False


ADAPTERS = {c.name: c for c in (TorchSave, SafetensorsSave, DcpSave, DcpAsyncSave,
                                 TierdCkpt, TierdLazy, Tierd4k)}


# ---- the concurrent compute loop ------------------------------------------------------


CHILD = r"""
import os, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np
buf = np.memmap(sys.argv[1], dtype=np.float64, mode="r+")
ring = buf[2:]
R = ring.size
a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)
b = a.copy(); c = np.empty_like(a)
n = 0
parent = os.getppid()
while True:
    ctl = buf[0]
    # Orphaned (the benchmark was killed): stop, or it would spin on a core
    # and slow whatever runs next.
    if ctl < 0 or os.getppid() != parent:
        break
    if ctl == 0:
        time.sleep(0.001)
        continue
    np.matmul(a, b, out=c)
    ring[n % R] = time.perf_counter()
    n += 1
    buf[1] = n
"""


class ComputeLoop:
    """A 512x512 float32 matmul loop in a separate process (1 BLAS thread)."""

    def __init__(self, ring: int = 1 << 18) -> None:
        # Shared through a file in /dev/shm (tmpfs: never written back by sync).
        shm_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, self.path = tempfile.mkstemp(prefix="tierd-bench-loop-", dir=shm_dir)
        os.close(fd)
        self.buf = np.memmap(self.path, dtype=np.float64, mode="w+", shape=(ring + 2,))
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, self.path], env=env)
        # Wait until it computes: a first save measured while the child still
        # imported numpy saw no iterations at all (a slowdown of n/a).
        self.run(True)
        deadline = time.monotonic() + 60
        while self.buf[1] < 1:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the compute-loop child did not start computing")
            time.sleep(0.01)
        self.run(False)

    def run(self, on: bool) -> None:
        self.buf[0] = 1.0 if on else 0.0

    def rate(self, a: float, b: float) -> float:
        """Iterations/s completed in [a, b] (perf_counter is CLOCK_MONOTONIC: system-wide)."""
        n = int(self.buf[1])
        ring = self.buf[2:]
        k = min(n, ring.size)
        idx = (np.arange(n - k, n) % ring.size)
        ts = ring[idx]
        return float(((ts >= a) & (ts <= b)).sum()) / max(b - a, 1e-9)

    def close(self) -> None:
        self.buf[0] = -1.0
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        del self.buf
        os.unlink(self.path)


# ---- baselines ------------------------------------------------------------------------


def memcpy_time(state, dst: list[np.ndarray]) -> float:
    src = [as_bytes(t) for _p, t in leaves(state)]
    t0 = time.perf_counter()
    for s, d in zip(src, dst):
        np.copyto(d, s)
    return time.perf_counter() - t0


def fio(path: str, size: int, rw: str) -> float:
    """Seconds fio needs to move size bytes (io_bytes / bw_bytes of its report)."""
    cmd = ["fio", "--name=ckpt-" + rw, f"--filename={path}", f"--rw={rw}", "--bs=1M",
           "--iodepth=16", "--direct=1", "--ioengine=io_uring", f"--size={size}",
           "--output-format=json"]
    cmd += ["--end_fsync=1"] if rw == "write" else ["--readonly"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"fio failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    doc = json.loads(p.stdout[p.stdout.find("{"):])
    side = doc["jobs"][0]["read" if rw == "read" else "write"]
    return float(side["io_bytes"]) / float(side["bw_bytes"])


FIO_FLAGS = "--rw=write|read --bs=1M --iodepth=16 --direct=1 --ioengine=io_uring (write: --end_fsync=1)"


# ---- the run --------------------------------------------------------------------------


def run_order(tools: list, rep: int) -> list:
    """The tools in repetition rep's order: row rep of a Williams design
    (a Latin square balanced for carry-over), so over len(tools)
    repetitions every tool runs first once and right after each other tool
    once (with an odd count, over twice as many: the rows, then reversed).
    Rotating one list by one per repetition, as before, changed which tool
    went first but kept every tool right after the same neighbour: tierd
    followed dcp.async_save in 5 of 7 repetitions."""
    n = len(tools)
    if n == 0:
        return []
    base, lo, hi = [0], 1, n - 1          # 0, 1, n-1, 2, n-2, ...
    while len(base) < n:
        base.append(lo)
        lo += 1
        if len(base) < n:
            base.append(hi)
            hi -= 1
    order = [tools[(b + rep) % n] for b in base]
    return order[::-1] if n % 2 and (rep // n) % 2 else order


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def bench(args) -> dict:
    size = args.size
    requested = args.tools
    tools, skipped = [], {}
    for name in requested:
        t = ADAPTERS[name]()
        why = t.available()
        if why:
            skipped[name] = why
            log(f"bench_checkpoint: {name}: not available ({why})")
        else:
            tools.append(t)
    use_torch = have("torch") and not args.no_torch_state
    log(f"bench_checkpoint: building a {fmt_size(size)} state ...")
    state, info = make_state(size, use_torch)
    nbytes = info["bytes"]
    log(f"  {info['tensors']} tensors, {fmt_size(nbytes)} ({info['kind']}; d_model "
        f"{info['d_model']}, {info['layers']} layers, vocab {info['vocab']})")
    root = tempfile.mkdtemp(prefix="tierd-bench-ckpt-", dir="/tmp")
    res = {"size": size, "bytes": nbytes, "state": info, "runs": args.runs,
           "skipped": skipped, "versions": versions(), "root": root,
           "tools": {t.name: {"blocking": [], "durable": [], "staged": [], "slowdown": [], "lost": [],
                              "loop_alone": [], "loop_during": [], "restore": [],
                              "restore_open": [], "fio_write": [], "fio_read": [],
                              "fio_read_open": [],
                              "disk": None} for t in tools},
           "memcpy": [], "fio_write": [], "fio_read": []}
    loop = ComputeLoop()
    dst = [np.empty_like(as_bytes(t)) for _p, t in leaves(state)]
    for d_ in dst:
        d_[:] = 1                                     # pre-touch the destination
    step = 0
    try:
        for t in tools:
            t.setup(os.path.join(root, t.name), nbytes)
            if hasattr(t, "prepare_load"):
                t.prepare_load(state)
        fio_file = os.path.join(root, "fio.dat")
        pair_file = os.path.join(root, "fio-pair.dat")

        def fio_pass(path: str, rw: str) -> float:
            drop_caches()
            if rw == "write" and os.path.exists(path):
                os.unlink(path)
            return fio(path, nbytes, rw)

        for rep in range(args.runs):
            log(f"-- repetition {rep + 1}/{args.runs}")
            # baselines
            m = statistics.median(memcpy_time(state, dst) for _ in range(3))
            res["memcpy"].append(m)
            fw = fio_pass(fio_file, "write")
            fr = fio_pass(fio_file, "read")
            os.unlink(fio_file)
            res["fio_write"].append(fw)
            res["fio_read"].append(fr)
            log(f"  memcpy {m * 1e3:.0f} ms, fio write {fw * 1e3:.0f} ms, read {fr * 1e3:.0f} ms")
            # The order changes each repetition: a tool run right after
            # dcp.async_save blocked longer (tierd: 149/102/81 ms against
            # 66-91 after the others, measured), so no tool may always
            # follow the same one.
            for t in run_order(tools, rep):
                r = res["tools"][t.name]
                d = os.path.join(root, t.name, "ckpt")
                # 1. under the compute loop
                step += 1
                mutate(state, step)
                shutil.rmtree(d, ignore_errors=True)
                drop_caches()
                loop.run(True)
                time.sleep(0.3)
                a0 = time.perf_counter()
                time.sleep(1.5)
                a1 = time.perf_counter()
                _b, dur = t.save(state, d)
                alone, during = loop.rate(a0, a1), loop.rate(a1, a1 + dur)
                loop.run(False)
                r["loop_alone"].append(alone)
                r["loop_during"].append(during)
                r["slowdown"].append(100.0 * (1.0 - during / alone) if alone > 0 else None)
                # The same loss as loop time: the share of the window the loop
                # lost. A percentage alone favours a long window (a slow save
                # spreads the same loss thinner), so both are reported.
                r["lost"].append((1.0 - during / alone) * dur if alone > 0 else None)
                if isinstance(t, TierdCkpt):
                    t.staged_s.pop()
                # 2. timed, quiet
                step += 1
                mutate(state, step)
                shutil.rmtree(d, ignore_errors=True)
                drop_caches()
                time.sleep(0.2)
                blk, dur = t.save(state, d)
                r["blocking"].append(blk)
                r["durable"].append(dur)
                # The device's speed drifts (2x within seconds here): each
                # ratio pairs the tool with fio run right after it. The file
                # fio writes now is the one it reads after the restores: like
                # the tool's data, written just before and read once (reads
                # of data read moments ago are faster on this VM's disk).
                r["fio_write"].append(fio_pass(pair_file, "write"))
                if isinstance(t, TierdCkpt):
                    r["staged"].append(t.staged_s[-1])
                # 3. cold restore
                t.before_load()
                drop_caches()
                t0 = time.perf_counter()
                got = t.load(d)
                touch(got)
                rt = time.perf_counter() - t0
                verify(state, got)
                del got
                r["restore"].append(rt)
                r["fio_read"].append(fio_pass(pair_file, "read"))
                ro = ""
                if isinstance(t, TierdCkpt) and not t.lazy:
                    # 4. cold restore, zero-copy (read-only views), the same way
                    t.before_load()
                    drop_caches()
                    t0 = time.perf_counter()
                    snap = t.open()
                    touch(snap.state)
                    rto = time.perf_counter() - t0
                    verify(state, snap.state)
                    snap.close()
                    del snap
                    r["restore_open"].append(rto)
                    r["fio_read_open"].append(fio_pass(pair_file, "read"))
                    ro = f"  open {rto * 1e3:6.0f} ms"
                sd = r["slowdown"][-1]
                # None: the loop made no progress before the save (still starting).
                sd_s = "  n/a" if sd is None else f"{sd:5.1f}"
                log(f"  {t.name:15s} blocking {blk * 1e3:7.0f} ms  durable {dur * 1e3:7.0f} ms  "
                    f"loop {sd_s}% slower  restore {rt * 1e3:6.0f} ms{ro}  "
                    f"(fio after: write {r['fio_write'][-1] * 1e3:.0f} ms, read "
                    f"{r['fio_read'][-1] * 1e3:.0f} ms)")
                os.unlink(pair_file)
        for t in tools:
            d = os.path.join(root, t.name, "ckpt")
            res["tools"][t.name]["disk"] = t.disk_bytes(d)
            if isinstance(t, TierdCkpt):
                res["tools"][t.name]["arena_backing"] = sorted(t.backings)
                res["tools"][t.name]["keep_warm"] = sorted(t.keep_warm)
    finally:
        for t in tools:
            try:
                t.close()
            except Exception as e:  # noqa: BLE001 - report, keep cleaning up
                log(f"bench_checkpoint: closing {t.name}: {e}")
        try:
            loop.close()
        finally:
            res["dropped_caches"] = bool(_DROP_OK)
            shutil.rmtree(root, ignore_errors=True)
    for name, r in res["tools"].items():
        # Per-repetition ratios (tool against the memcpy of its repetition and
        # the fio pass right after it), then their median.
        r["ratio"] = {
            "blocking": med([b / m for b, m in zip(r["blocking"], res["memcpy"])]),
            "durable": med([d / w for d, w in zip(r["durable"], r["fio_write"])]),
            "restore": med([f / x for f, x in zip(r["fio_read"], r["restore"])]),
            "restore_open": med([f / x for f, x in zip(r["fio_read_open"], r["restore_open"])]),
        }
        r["median"] = {k: med(r[k]) for k in ("blocking", "durable", "staged", "slowdown", "lost",
                                                 "restore", "restore_open", "loop_alone",
                                                 "loop_during")}
    res["median"] = {k: med(res[k]) for k in ("memcpy", "fio_write", "fio_read")}
    return res


# ---- report --------------------------------------------------------------------------


def _pct(x) -> str:
    return "—" if x is None else f"{x:.1f}%"


def ms(x) -> str:
    return "—" if x is None else (f"{x * 1e3:.0f} ms" if x < 10 else f"{x:.1f} s")


def table(res: dict) -> list[str]:
    mm = res["median"]
    nbytes = res["bytes"]
    peers = [n for n in res["tools"] if n not in TIERD_TOOLS]
    rows = ["| tool | blocking | time until durable | compute-loop slowdown (loop time lost) "
            "| cold restore | bytes on disk | blocking / memcpy | durable / fio write "
            "| restore / fio read (bandwidth) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows.append(f"| memcpy of the state (baseline) | {ms(mm['memcpy'])} | | | | | 1.00x | | |")
    rows.append(f"| fio seq write / read, same bytes (baseline) | | {ms(mm['fio_write'])} | | "
                f"{ms(mm['fio_read'])} | {nbytes / MiB:.0f} MiB | | 1.00x | 1.00x |")
    for name in ALL_TOOLS + EXTRA_TOOLS:
        if name in res["skipped"]:
            rows.append(f"| {name} | not available: {res['skipped'][name]} | | | | | | | |")
            continue
        if name not in res["tools"]:
            continue
        r = res["tools"][name]
        m = r["median"]
        rb, rd, rr = r["ratio"]["blocking"], r["ratio"]["durable"], r["ratio"]["restore"]
        blk = ms(m["blocking"])
        if name in TIERD_TOOLS and m["staged"] is not None and name == "tierd-lazy":
            blk += f" (staged at {ms(m['staged'])})"
        if name in TIERD_TOOLS:
            others_b = [res["tools"][p]["median"]["blocking"] for p in peers]
            # Durable time is the device's: it drifts 2x within seconds here,
            # so tools are compared by their ratio to the fio write paired
            # with each of their saves, not by medians taken minutes apart.
            others_d = [res["tools"][p]["ratio"]["durable"] for p in peers]
            ahead_b = all(m["blocking"] < x for x in others_b)
            ahead_d = all(rd < x for x in others_d)
            pf = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
            sb = f"{rb:.2f}x (≤ {BAR_BLOCKING}x: {pf(rb <= BAR_BLOCKING)}; ahead of peers: " \
                 f"{pf(ahead_b) if peers else 'no peers ran'})"
            sd = f"{rd:.2f}x (≤ {BAR_DURABLE}x: {pf(rd <= BAR_DURABLE)}; ahead of peers: " \
                 f"{pf(ahead_d) if peers else 'no peers ran'})"
            sr = f"{rr:.2f}x (≥ {BAR_RESTORE}x: {pf(rr >= BAR_RESTORE)})"
        else:
            sb, sd, sr = f"{rb:.2f}x", f"{rd:.2f}x", f"{rr:.2f}x"
        disk = r["disk"]
        disk_s = "—" if disk is None else f"{disk[0] / MiB:.0f} MiB"
        label = f"{name}: load()" if name == "tierd" and m["restore_open"] is not None else name
        lost = "" if m["lost"] is None else f" ({ms(m['lost'])})"
        rows.append(f"| {label} | {blk} | {ms(m['durable'])} | {_pct(m['slowdown'])}{lost} "
                    f"| {ms(m['restore'])} | {disk_s} | {sb} | {sd} | {sr} |")
        if m["restore_open"] is not None:
            ro = r["ratio"]["restore_open"]
            rows.append(f"| {name}: open() (zero-copy restore) | | | | {ms(m['restore_open'])} "
                        f"| | | | {ro:.2f}x (≥ {BAR_RESTORE}x: {pf(ro >= BAR_RESTORE)}) |")
    return rows


def notes(res: dict, argv: list[str]) -> list[str]:
    st = res["state"]
    v = res["versions"]
    tl = [r for r in res["tools"].values()]
    la = med([x for r in tl for x in r["loop_alone"]])
    out = [
        f"- state: {st['tensors']} tensors, {res['bytes'] / MiB:.0f} MiB ({st['kind']}): bf16 "
        f"weights ~ N(0, 0.02), fp32 exp_avg ~ N(0, 1e-3), fp32 exp_avg_sq ~ |N(0, 1e-6)|; "
        f"transformer shapes, d_model {st['d_model']}, {st['layers']} layers, vocab {st['vocab']}. "
        "Before every save one byte of every 4 KiB of every tensor changes (an optimizer "
        "step's stand-in: nothing deduplicates across steps).",
        f"- versions: torch {v['torch']}, safetensors {v['safetensors']}, ml_dtypes "
        f"{v['ml_dtypes']}, numpy {v['numpy']}, tierd {v['tierd']}.",
        f"- medians of {res['runs']} repetitions; tools interleaved within each repetition "
        "(baselines first, then each tool: loop save, timed save, cold restore), in the "
        "order of a Williams design: over as many repetitions as tools, each tool runs "
        "first once and right after each other tool once (whichever tool ran right "
        "after dcp.async_save blocked longer). "
        + ("Page cache dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) before every "
           "fio pass, save and restore." if res["dropped_caches"] else
           "**The page cache could NOT be dropped (not root): restores are not cold.**"),
        "- durability is the same for every tool: every file and the directory (and its "
        "parent) fsynced. torch.save / safetensors / dcp.save are synchronous: blocking = "
        "durable = the call + fsync. dcp.async_save: blocking = until async_save returns, "
        "durable = until its future completes + fsync. tierd: blocking = until ck.save() "
        "returns (eager: state copied into the DRAM tier); durable = until "
        "h.wait(\"persisted\") (on NVMe, in the catalog). tierd-lazy: save(lazy=True), "
        "\"staged at\" = until h.wait(\"staged\") returned (the next optimizer step waits "
        "for it).",
        f"- memcpy: np.copyto of every tensor into preallocated, pre-touched arrays "
        f"(median of 3 per repetition). fio: `fio {FIO_FLAGS} --size={res['bytes']}` on "
        "a fresh file in the same directory (/tmp); time = io_bytes / bw_bytes of its report. "
        "The baseline row: the passes at the start of each repetition. The ratios pair each "
        "tool with fio run right after it in the same repetition (this device's speed "
        "changes 2x within seconds): a fresh-file write right after its timed save, and "
        "reads of that same file right after each cold restore (like the tool's data: "
        "written moments before; re-reads are faster here, and tierd's open() restore, "
        "which follows its load() restore, is paired with the file's second read), and "
        "report the "
        "median of the per-repetition ratios; blocking / memcpy likewise against the "
        "repetition's memcpy.",
        f"- compute-loop slowdown: 512x512 float32 numpy matmuls (1 BLAS thread) in a separate "
        f"process; iterations/s during [save call, durable] vs. the 1.5 s just before "
        f"(alone: median {'n/a' if la is None else f'{la:.0f}'} it/s) in a separate save of "
        f"the same tool; the machine has {os.cpu_count()} cores. In parentheses, the same "
        "loss as loop time (slowdown x the window), the median per save: a percentage alone "
        "reads better the longer a save takes. After each daemon restart "
        "tierd's client maps the new arena writable in a background thread from the moment "
        "its checkpoint manager opens (once per connection), so during the cold restore "
        "that follows; with the daemon's arena in huge pages (its log says which) that maps "
        "one entry per 2 MiB.",
        "- cold restore: tierd's daemon restarted first (its DRAM tier is empty), page cache "
        "dropped, then load() plus a read of one byte of every 4 KiB page of the result; "
        "verified byte for byte afterwards (untimed). torch.load(weights_only=True); "
        "safetensors.torch.load_file; dcp.load into preallocated (untouched) tensors. "
        "tierd: open(): a second restart and drop, then ck.open() (read-only numpy views "
        "of the daemon's arena, which the chunks are read into O_DIRECT and verified in; a "
        "tensor over several chunks has them mapped side by side) plus the same read of "
        "every page; load() copies into fresh private memory instead (tensors of 2 MiB and "
        "more in mappings of their own, in 4 KiB pages, populated by a thread of their own "
        "from the start while the daemon reads; batches of a quarter of the arena, up to "
        "512 MiB). tierd's client "
        "connects (and maps, but does not populate, its arena: ~10 ms) before the clock "
        "starts.",
        "- tierd's DRAM arena (status `backing`, over every daemon start): "
        + "; ".join(f"{n}: {', '.join(r.get('arena_backing') or ['?'])}"
                    for n, r in res["tools"].items() if n in TIERD_TOOLS)
        + " (thp: 2 MiB pages, collapsed at start; plain: 4 KiB pages). Arenas kept warm "
        "([dram] keep_warm = \"auto\": a byte of every page read every 5 s under a "
        "hypervisor): "
        + "; ".join(f"{n}: {', '.join(r.get('keep_warm') or ['?'])}"
                    for n, r in res["tools"].items() if n in TIERD_TOOLS) + ".",
        "- tierd's daemons run with store.prewrite = true: their data space (5x the state) "
        "was written once with zeros when the store was created, before the first "
        "repetition, so a save overwrites space instead of converting fallocated "
        "(unwritten) extents; the peers and fio write fresh files, as they do in use.",
        "- bytes on disk: allocated bytes of the tool's files (du); tierd: the namespace's "
        "nvme_used after deleting all but the latest snapshot.",
        "- bars (tierd rows): blocking ≤ 1.5x memcpy; durable ≤ 1.2x fio write; restore "
        "bandwidth ≥ 0.8x fio read (= fio read time / restore time); ahead of every peer "
        "that ran on blocking (median time) and on durable (median of durable / fio "
        "write, the write paired with each save: the device drifts too much for medians "
        "taken minutes apart).",
    ]
    if res["skipped"]:
        out.append("- not run: " + "; ".join(f"{k}: {v}" for k, v in res["skipped"].items()) + ".")
    return out


def record(path: str, argv: list[str], rows: list[str], note_lines: list[str]) -> None:
    from tierd_perf.record import append_section
    cmd = "python perf/bench_checkpoint.py " + " ".join(shlex.quote(x) for x in argv)
    append_section(path, "checkpoint save/restore vs torch, safetensors, DCP (issue 4)", cmd,
                   [*rows, "", *note_lines], "/tmp")
    log(f"bench_checkpoint: results appended to {path}")


def _interrupted(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1GiB", help="training state size (default 1GiB)")
    ap.add_argument("--runs", type=int, default=None, help="repetitions (default 5; --quick: 2)")
    ap.add_argument("--quick", action="store_true", help="128 MiB, 2 runs: a smoke test")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS),
                    help=f"comma-separated subset of {','.join(ALL_TOOLS + EXTRA_TOOLS)} "
                         "(default: all but tierd-4k)")
    ap.add_argument("--no-torch-state", action="store_true",
                    help="numpy state even when torch is installed (tierd-only runs)")
    ap.add_argument("--record", metavar="FILE", help="append the table to FILE (perf/RESULTS.md)")
    ap.add_argument("--json", metavar="FILE", help="write all numbers as JSON to FILE")
    args = ap.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in args.tools if t not in ADAPTERS]
    if bad:
        ap.error(f"unknown tool(s) {bad}; choose from {','.join(ALL_TOOLS + EXTRA_TOOLS)}")
    args.size = 128 * MiB if args.quick and "--size" not in " ".join(argv) else parse_size(args.size)
    args.runs = args.runs or (2 if args.quick else 5)
    if shutil.which("fio") is None:
        log("bench_checkpoint: fio is not installed (apt-get install fio)")
        return 1
    warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
    # SIGTERM (kill, a CI timeout) unwinds like Ctrl-C, so bench()'s cleanup
    # stops the private daemons and deletes the GiBs of data it wrote.
    signal.signal(signal.SIGTERM, _interrupted)
    res = bench(args)
    rows, note_lines = table(res), notes(res, argv)
    print(f"\n== checkpoint of a {fmt_size(res['bytes'])} training state: medians of "
          f"{res['runs']} runs ==\n")
    print("\n".join(rows) + "\n\n" + "\n".join(note_lines))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2, default=str)
    if args.record:
        record(args.record, argv, rows, note_lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
