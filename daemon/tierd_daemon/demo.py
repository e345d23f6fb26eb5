"""`tierd demo`: a checkpoint-shaped workload through the real store.

Until the daemon and its checkpoint API land, this is what the README's
"run" command does: build a training state (bf16-like weights, fp32
optimizer moments), save it as chunked objects with one catalog commit per
step, restore and verify it bit-exact, fsck, and clean up its objects.
"""
from __future__ import annotations

import logging
import sys
import time

import numpy as np

from tierd_daemon.units import format_size, parse_size

log = logging.getLogger("tierd.demo")


def _progress(label: str, done: int, total: int) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r{label:<10} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
          end="\n" if done >= total else "", file=sys.stderr, flush=True)


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


def chunks_of(state: dict[str, np.ndarray], chunk: int):
    for name, arr in state.items():
        flat = arr.reshape(-1).view(np.uint8)
        for i, off in enumerate(range(0, flat.nbytes, chunk)):
            yield f"{name}/{i:06d}", flat[off:off + chunk]


def run_demo(args) -> int:
    from tierd_daemon import config as config_mod
    from tierd_daemon.dio import aligned_buffer
    from tierd_daemon.store import Store

    cfg = config_mod.load(args.config)
    path = args.data_dir or cfg.store_dir
    size, chunk = parse_size(args.size, "--size"), parse_size(args.chunk, "--chunk")
    ns = "default" if "default" in cfg.store.namespaces else sorted(cfg.store.namespaces)[0]
    state = make_state(size)
    pieces = list(chunks_of(state, chunk))
    total = sum(p.nbytes for _, p in pieces)
    print(f"tierd demo: store {path}, namespace {ns!r}, state {format_size(total)} in "
          f"{len(pieces)} objects of {format_size(chunk)}, {args.rounds} rounds")
    batch = 16
    with Store.open(path, cfg.store) as store:
        u = store.usage()
        print(f"engine {u.engine}{' (fixed buffers)' if u.fixed_buffers else ''}, page "
              f"{u.page_size}, capacity {format_size(u.capacity_bytes)}")
        # Page-aligned destinations: restore reads land in them with no copy.
        out = [aligned_buffer(p.nbytes) for _, p in pieces]
        for r in range(args.rounds):
            prefix = f"demo/step-{r:04d}/"
            t0 = time.perf_counter()
            for i in range(0, len(pieces), batch):
                store.put_many(ns, [(prefix + k, v) for k, v in pieces[i:i + batch]])
                _progress("save", min(i + batch, len(pieces)), len(pieces))
            t_save = time.perf_counter() - t0
            t0 = time.perf_counter()
            for i, (k, v) in enumerate(pieces):
                store.get_into(ns, prefix + k, out[i])
                _progress("restore", i + 1, len(pieces))
            t_load = time.perf_counter() - t0
            bad = [k for (k, v), o in zip(pieces, out) if not np.array_equal(v, o)]
            if bad:
                print(f"round {r}: {len(bad)} objects differ after restore: {bad[:3]}")
                return 1
            print(f"round {r}: save {total / t_save / 2**20:8.1f} MiB/s (durable), "
                  f"restore {total / t_load / 2**20:8.1f} MiB/s (verified), bit-exact")
        rep = store.fsck(verify_data=True)
        print(f"fsck: {'clean' if rep.ok else rep.errors}, {rep.verified} objects verified")
        for r in range(args.rounds):
            prefix = f"demo/step-{r:04d}/"
            store.delete_many(ns, [prefix + k for k, _ in pieces])
        return 0 if rep.ok else 1
