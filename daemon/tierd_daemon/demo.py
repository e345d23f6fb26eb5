"""`tierd demo`: the README's main job. Start the daemon on its built-in
default (or use one already running), and drive a real workload through it:

1. checkpoints: a training state (bf16 weights, fp32 Adam moments) saved
   at several steps with the checkpoint API (staged in DRAM, persisted in
   the background, unchanged chunks stored once), restored and verified;
2. a cold restore: the daemon is restarted (SIGTERM flushes to NVMe) and
   the state comes back from NVMe, verified;
3. KV-cache-style: 4 KiB blocks keyed by chained hashes in the cache
   namespace, and a prefix read back in one request.

KV pools and the ANN index will replace the raw object calls of step 3 as
they land.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np

from tierd_daemon.units import format_size, parse_size

NS = "default"


def make_state(nbytes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A training state of about nbytes: 1/5 bf16 weights, 4/5 fp32 Adam moments."""
    rng = np.random.default_rng(seed)
    n_w = nbytes // 5 // 2
    w = (rng.standard_normal(n_w, dtype=np.float32) * 0.02).view(np.uint32) >> 16
    n_m = (nbytes - n_w * 2) // 8
    return {
        "model.weight.bf16": w.astype(np.uint16),
        "optim.exp_avg": rng.standard_normal(n_m, dtype=np.float32) * 1e-3,
        "optim.exp_avg_sq": np.abs(rng.standard_normal(n_m, dtype=np.float32)) * 1e-6,
    }


class DaemonHandle:
    """The daemon the demo talks to: one it started, or one already running."""

    def __init__(self, cfg, config_path: str | None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(cfg.data_dir, "demo-daemon.log")

    def answers(self) -> bool:
        import tierd
        try:
            tierd.connect(self.cfg.server.socket, timeout=2, reconnect=False).close()
            return True
        except tierd.TierdError:
            return False

    def start(self) -> None:
        os.makedirs(self.cfg.data_dir, exist_ok=True)
        cmd = [sys.executable, "-m", "tierd_daemon", "serve"]
        if self.config_path:
            cmd += ["--config", self.config_path]
        dram = sum(n.dram_bytes for n in self.cfg.store.namespaces.values())
        print(f"starting tierd serve (prefaulting {format_size(dram)} of DRAM; log: "
              f"{self.log_path})", flush=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while not self.answers():
            if self.proc.poll() is not None:
                raise SystemExit(f"tierd serve exited with {self.proc.returncode}; see "
                                 f"{self.log_path}")
            if time.monotonic() > deadline:
                raise SystemExit(f"tierd serve did not come up; see {self.log_path}")
            time.sleep(0.1)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=300)
        self.proc = None
        return rc


def run_demo(args) -> int:
    import tierd
    from tierd_daemon import config as config_mod

    cfg = config_mod.load(args.config)
    size, chunk = parse_size(args.size, "--size"), parse_size(args.chunk, "--chunk")
    d = DaemonHandle(cfg, args.config)
    started = False
    if d.answers():
        print(f"using the tierd already serving on {cfg.server.socket}")
    else:
        d.start()
        started = True
    try:
        return _workload(tierd, d, started, size, chunk, args.rounds)
    finally:
        if started and d.proc is not None:
            rc = d.stop()
            print(f"tierd stopped (exit {rc}; dirty data flushed to NVMe first)")


def _workload(tierd, d: DaemonHandle, started: bool, size: int, chunk: int, rounds: int) -> int:
    state = make_state(size)
    total = sum(a.nbytes for a in state.values())
    run = "demo-run"
    with tierd.connect(d.cfg.server.socket) as c:
        st = c.status()
        print(f"tierd {st['server']['version']} on {st['server']['socket']}: store "
              f"{format_size(st['store']['capacity_bytes'])} ({st['store']['engine']}), "
              f"namespaces {', '.join(sorted(st['namespaces']))}")
        ck = c.checkpoints(run, keep_last=2, ns=NS, chunk_bytes=chunk)
        print(f"checkpoint run {run!r}: state {format_size(total)} (bf16 weights, fp32 Adam "
              f"moments), {rounds} steps, chunks of {format_size(chunk)}")
        for step in range(1, rounds + 1):
            # A training step changes part of the optimizer state.
            part = state["optim.exp_avg"]
            part[: part.size // 8] += np.float32(1e-4)
            t0 = time.perf_counter()
            h = ck.save(step, {"state": state, "step": step, "lr": 3e-4})
            t_block = time.perf_counter() - t0
            h.wait("persisted")
            t_durable = time.perf_counter() - t0
            t0 = time.perf_counter()
            got = ck.load(step)
            t_load = time.perf_counter() - t0
            bad = [k for k in state if not np.array_equal(state[k], got["state"][k])]
            if bad or got["step"] != step:
                print(f"step {step}: restore differs: {bad[:3]}")
                return 1
            print(f"step {step}: training blocked {t_block * 1e3:6.1f} ms, durable after "
                  f"{t_durable * 1e3:6.1f} ms, restore {total / t_load / 2**20:6.0f} MiB/s "
                  "(verified)")
        print(f"snapshots kept: {ck.steps()}, latest {ck.latest()}")
        ck.close()
    if started:
        # Cold restore: restart the daemon (SIGTERM flushes), read from NVMe.
        rc = d.stop()
        if rc != 0:
            print(f"tierd exited with {rc} on SIGTERM")
            return 1
        d.start()
    with tierd.connect(d.cfg.server.socket) as c:
        ck = c.checkpoints(run, keep_last=2, ns=NS, chunk_bytes=chunk)
        t0 = time.perf_counter()
        got = ck.load()
        t_cold = time.perf_counter() - t0
        if any(not np.array_equal(state[k], got["state"][k]) for k in state):
            print("cold restore differs")
            return 1
        print(f"cold restore of step {ck.latest()} after a daemon restart: "
              f"{total / t_cold / 2**20:6.0f} MiB/s from NVMe, bit-exact")
        _kv_blocks(c)
        ns = c.status()["namespaces"][NS]
        print(f"namespace {NS!r}: DRAM {format_size(ns['dram_used'])} of "
              f"{format_size(ns['dram_bytes'])} in use, NVMe {format_size(ns['nvme_used'])}")
        for step in ck.steps():
            ck.delete(step)
        ck.close()
    return 0


def _kv_blocks(c, n_blocks: int = 256, block: int = 4096) -> None:
    """KV-cache style: blocks keyed by chained hashes; read back the prefix."""
    rng = np.random.default_rng(1)
    h = hashlib.blake2b(b"demo-prompt", digest_size=16).digest()
    keys, blocks = [], []
    for i in range(n_blocks):
        tokens = rng.integers(0, 50000, 16, dtype=np.int32).tobytes()
        h = hashlib.blake2b(h + tokens, digest_size=16).digest()   # chained: key depends on prefix
        keys.append(b"kv/" + h)
        blocks.append(rng.integers(0, 256, block, dtype=np.uint8))
    t0 = time.perf_counter()
    c.put_many("cache", list(zip(keys, blocks)))
    t_put = time.perf_counter() - t0
    t0 = time.perf_counter()
    leases = c.get_many("cache", keys)
    t_get = time.perf_counter() - t0
    ok = all(np.array_equal(lz.array, b) for lz, b in zip(leases, blocks))
    for lz in leases:
        lz.release()
    c.delete_many("cache", keys)
    print(f"kv blocks: {n_blocks} x {block} B put in {t_put * 1e3:.1f} ms, prefix of "
          f"{n_blocks} read in one request in {t_get * 1e3:.1f} ms, {'bit-exact' if ok else 'MISMATCH'}")
    if not ok:
        raise SystemExit(1)
