"""ioengine=tierd: put/get of bs-sized objects through a running tierd daemon.

Like ioengine=store, but through the thin client (`tierd.connect`) and the
daemon's shared-memory arenas instead of opening the store in-process.

- `filename` is the daemon's socket. Without it, the runner starts its own
  daemon (`python -m tierd_daemon serve --config <generated toml>`) with
  data and socket under one mkdtemp, store capacity 2x the job's data +
  64 MiB, namespace "default" durable with `dram=` bytes of DRAM (tierd-only
  job option, default 256m), metrics off; it is stopped with SIGTERM after
  the job and its directory removed.
- Write jobs put_many batches of up to iodepth objects with the job's
  `durability=` (tierd-only: staged | persisted, default staged).
- Read jobs lay the objects out first (put + flush), then get_many batches
  of iodepth keys and release the leases (one release request per batch).
  A get consumes nothing: the lease's bytes are a zero-copy view of the
  arena, so the bandwidth is what the daemon serves.

Objects are named `perf.<bs>.<thread>.<i>`, as the store engine names them.
Every object of a batch is charged the batch's wall time ("clat (batch)").
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from tierd_perf.common import Blocks, Clock, Directions, Progress, ThreadResult, object_batch
from tierd_perf.jobfile import Job

NS = "default"
DEFAULT_DRAM = 256 << 20
DURABILITIES = ("staged", "persisted")

DAEMON_TOML = """\
data_dir = "{data_dir}"
log_level = "{log_level}"

[server]
socket = "{socket}"
lease_timeout_s = 300
alloc_timeout_s = {alloc_timeout}

[metrics]
listen = ""

[dram]
keep_warm = "{keep_warm}"

[store]
capacity = {capacity}
prewrite = {prewrite}

[namespaces.default]
durable = true
dram_bytes = {dram}
huge_pages = {huge_pages}
"""


def object_keys(job: Job, idx: int) -> list[bytes]:
    return [f"perf.{job.bs}.{idx}.{i}".encode() for i in range(max(1, job.size // job.bs))]


def capacity_for(job: Job) -> int:
    """2x the job's data (every thread's objects, page-rounded) + 64 MiB."""
    data = max(1, job.size // job.bs) * (-(-job.bs // 4096) * 4096) * job.numjobs
    return 2 * data + (64 << 20)


def _env() -> dict:
    """The daemon imports tierd from this checkout even when not installed."""
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [os.path.join(here, p) for p in ("client", "daemon")]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


class Daemon:
    """`tierd serve` in a subprocess with a generated config, under `root`.

    root: an existing directory (kept), or None for a fresh mkdtemp on /tmp
    that stop(remove=True) deletes. data_dir = root/data, socket = root/tierd.sock.
    """

    def __init__(self, capacity: int, dram: int, root: str | None = None, *,
                 alloc_timeout: float = 30.0, log_level: str = "info",
                 prewrite: bool = False, huge_pages: bool = True,
                 keep_warm: str = "auto") -> None:
        self.own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="tierd-perf-daemon-", dir="/tmp")
        os.makedirs(self.root, exist_ok=True)
        self.data_dir = os.path.join(self.root, "data")
        self.socket = os.path.join(self.root, "tierd.sock")
        self.config_path = os.path.join(self.root, "tierd.toml")
        self.log_path = os.path.join(self.root, "daemon.log")
        self.capacity, self.dram = int(capacity), int(dram)
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(DAEMON_TOML.format(data_dir=self.data_dir, socket=self.socket,
                                       capacity=self.capacity, dram=self.dram,
                                       alloc_timeout=alloc_timeout, log_level=log_level,
                                       prewrite="true" if prewrite else "false",
                                       huge_pages="true" if huge_pages else "false",
                                       keep_warm=keep_warm))
        self.proc: subprocess.Popen | None = None

    @property
    def store_dir(self) -> str:
        return os.path.join(self.data_dir, "store")

    def start(self, timeout: float = 120.0) -> "Daemon":
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tierd_daemon", "serve", "--config", self.config_path],
                stdout=log, stderr=subprocess.STDOUT, env=_env())
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"tierd serve exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop(remove=False)
                raise RuntimeError(f"tierd serve did not answer within {timeout:.0f}s:\n{self.log()}")
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        import tierd
        if not os.path.exists(self.socket):
            return False
        try:
            tierd.connect(self.socket, timeout=2, reconnect=False).close()
            return True
        except tierd.TierdError:
            return False

    def connect(self):
        import tierd
        return tierd.connect(self.socket, timeout=120)

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-8000:]
        except OSError:
            return ""

    def stop(self, remove: bool = False, timeout: float = 300.0) -> int:
        """SIGTERM (the daemon flushes dirty data first) and wait; remove the root if asked."""
        rc = 0
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    rc = self.proc.wait()
            elif self.proc is not None:
                rc = self.proc.returncode
            self.proc = None
        finally:
            if remove:
                shutil.rmtree(self.root, ignore_errors=True)
        return rc

    def __enter__(self) -> "Daemon":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(remove=self.own_root)


def release_all(client, leases: list) -> None:
    """Release a batch of leases in one request.

    The client has no public batched release (Lease.release() is one request
    per lease); this uses its _release_leases, falling back to per-lease.
    """
    if not leases:
        return
    rel = getattr(client, "_release_leases", None)
    try:
        ids = [ls._lease_id for ls in leases if not ls.released and ls._lease_id is not None]
        gen = leases[0]._gen
    except AttributeError:
        rel = None
    if rel is None:
        for ls in leases:
            ls.release()
        return
    for ls in leases:
        ls._released = True
        ls._array = None
        ls._client = None
    if ids:
        rel(ids, gen)


def _payload(n: int, bs: int, seed: int) -> list[np.ndarray]:
    mem = np.random.default_rng(seed).integers(0, 256, n * bs, dtype=np.uint8)
    return [mem[i * bs:(i + 1) * bs] for i in range(n)]


def layout(client, job: Job, nthreads: int | None = None) -> None:
    """Put every object a read job will get (unless present at bs), then flush."""
    depth = max(1, min(job.iodepth, max(1, (64 << 20) // job.bs)))
    views = _payload(depth, job.bs, 7)
    for idx in range(nthreads or job.numjobs):
        keys = object_keys(job, idx)
        missing = []
        for i in range(0, len(keys), 1024):
            part = keys[i:i + 1024]
            for k, there in zip(part, client.contains_many(NS, part)):
                if not there or client.stat(NS, k)["size"] != job.bs:
                    missing.append(k)
        for i in range(0, len(missing), depth):
            chunk = missing[i:i + depth]
            client.put_many(NS, list(zip(chunk, views)), durability=job.durability)
    client.flush(NS)


def run_thread(job: Job, idx: int, socket_path: str, progress: Progress) -> ThreadResult:
    import tierd
    res = ThreadResult(engine_name="tierd", lat_kind="batch")
    bs = job.bs
    nb = max(1, job.iodepth)
    keys = object_keys(job, idx)
    views = _payload(nb, bs, idx) if job.does_write else []
    blocks = Blocks(len(keys), job.is_random, seed=idx + 1)
    dirs = Directions(job, seed=idx + 1)
    measured = 0
    with tierd.connect(socket_path, timeout=120) as c:
        c.namespace_info(NS)   # map the arena before the clock starts
        clock = Clock(job)
        while (step := clock.next_batch(measured, nb, progress.stop)) is not None:
            measuring, n = step
            rd, wr = object_batch(blocks, dirs, keys, n)
            t0 = time.perf_counter_ns()
            if wr:
                c.put_many(NS, list(zip(wr, views)), durability=job.durability)
            if rd:
                leases = c.get_many(NS, rd)
                short = any(ls.size != bs for ls in leases)
                release_all(c, leases)
                if short:
                    raise OSError(5, f"tierd get returned a short object (expected {bs} bytes)")
            dt = time.perf_counter_ns() - t0
            if not measuring:
                continue
            measured += res.record_batch(dt, len(rd), len(wr), bs)
            progress.done[idx] = measured
        res.runtime_ns = clock.runtime_ns(time.perf_counter_ns())
    return res
