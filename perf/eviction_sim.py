#!/usr/bin/env python3
"""Replay synthetic traces through the DRAM tier's eviction policies.

    python perf/eviction_sim.py [--requests N] [--policies s3fifo,lru,arc]
                                [--seed S] [--record perf/RESULTS.md]

For every trace and cache size (a fraction of the trace's reusable working
set bytes) each policy is driven the way the DRAM tier drives it: on a hit
access(); on a miss, while the object does not fit, take candidates from
victims() and evicted() them, then insert(). Reported: byte-hit ratio,
object-hit ratio, and the policy's own throughput (requests/s of the replay
loop, Python, single thread). Traces (keys are ints here; the policies only
hash them):

  zipf-0.8 / zipf-1.0  Zipf over 100k objects of mixed sizes (4 KiB .. 64 MiB)
  zipf+scan            zipf-1.0 plus, every 20k requests, a one-time sequential
                       scan of 5k never-seen 1 MiB chunks (a checkpoint restore
                       streaming through); cache % is of the Zipf part's bytes
  kv-prefix            LLM prefix caching: a request reads blocks 0..k-1 of one
                       of 20k conversations (Zipf 0.9 popularity), the chain
                       grows 1..16 blocks per turn; 4 KiB blocks
  loop                 a cyclic scan over objects 5-25% larger than the cache
                       (LRU's worst case); cache % is of the loop's bytes

With --record FILE a markdown section is APPENDED to FILE.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time

import numpy as np

try:
    from tierd_daemon.dram.eviction import POLICIES, make_policy
except ImportError:  # running from a checkout without the editable install
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "daemon"))
    from tierd_daemon.dram.eviction import POLICIES, make_policy

KiB, MiB = 1 << 10, 1 << 20
SIZE_CLASSES = np.array([4 * KiB, 64 * KiB, 1 * MiB, 16 * MiB, 64 * MiB], dtype=np.int64)
SIZE_PROBS = np.array([0.60, 0.25, 0.12, 0.025, 0.005])
STD_FRACTIONS = (0.01, 0.05, 0.10, 0.25)
LOOP_FRACTIONS = (0.80, 0.90, 0.95)


class Trace:
    def __init__(self, name, keys, sizes, ws_bytes, fractions, note=""):
        self.name, self.keys, self.sizes = name, keys, sizes
        self.ws_bytes, self.fractions, self.note = int(ws_bytes), fractions, note


def _zipf_ids(rng, n_objects, alpha, n):
    ranks = np.arange(1, n_objects + 1, dtype=np.float64)
    p = ranks ** -alpha
    p /= p.sum()
    perm = rng.permutation(n_objects)          # popularity independent of id/size
    return perm[rng.choice(n_objects, size=n, p=p)]


def _object_sizes(rng, n_objects):
    return SIZE_CLASSES[rng.choice(len(SIZE_CLASSES), size=n_objects, p=SIZE_PROBS)]


def trace_zipf(rng, n, alpha, n_objects=100_000):
    sizes_by_id = _object_sizes(rng, n_objects)
    ids = _zipf_ids(rng, n_objects, alpha, n)
    ws = int(sizes_by_id[np.unique(ids)].sum())
    return Trace(f"zipf-{alpha}", ids.tolist(), sizes_by_id[ids].tolist(), ws, STD_FRACTIONS,
                 "100k objects, sizes 4K 60% / 64K 25% / 1M 12% / 16M 2.5% / 64M 0.5%")


def trace_zipf_scan(rng, n, alpha=1.0, n_objects=100_000, every=20_000, scan_len=5_000):
    sizes_by_id = _object_sizes(rng, n_objects)
    n_scans = max(1, n // (every + scan_len))
    n_zipf = n - n_scans * scan_len
    ids = _zipf_ids(rng, n_objects, alpha, n_zipf)
    ws = int(sizes_by_id[np.unique(ids)].sum())
    zsizes = sizes_by_id[ids].tolist()
    ids = ids.tolist()
    keys, sizes = [], []
    next_scan_key = n_objects
    pos = 0
    for s in range(n_scans):
        seg = n_zipf // n_scans
        keys += ids[pos:pos + seg]
        sizes += zsizes[pos:pos + seg]
        pos += seg
        keys += range(next_scan_key, next_scan_key + scan_len)
        sizes += [1 * MiB] * scan_len
        next_scan_key += scan_len
    keys += ids[pos:]
    sizes += zsizes[pos:]
    return Trace("zipf+scan", keys, sizes, ws, STD_FRACTIONS,
                 f"zipf-1.0 + a {scan_len}x1MiB one-time scan every ~{every} requests "
                 f"({n_scans * scan_len * 100 // n}% of requests); cache % of the Zipf part's bytes")


def trace_kv_prefix(rng, n, n_conv=20_000, alpha=0.9, max_blocks=512, block=4 * KiB):
    convs = _zipf_ids(rng, n_conv, alpha, n)   # more than enough draws
    grow = rng.integers(1, 17, size=n)
    length = np.zeros(n_conv, dtype=np.int64)
    keys = []
    i = 0
    while len(keys) < n:
        c = int(convs[i])
        k = min(int(length[c]) + int(grow[i]), max_blocks)
        length[c] = k
        base = c * max_blocks
        keys.extend(range(base, base + k))
        i += 1
    keys = keys[:n]
    ws = len(set(keys)) * block
    return Trace("kv-prefix", keys, [block] * n, ws, STD_FRACTIONS,
                 f"{n_conv} conversations, Zipf {alpha}, +1..16 blocks/turn, 4 KiB blocks")


def trace_loop(rng, n, loop_objects=20_000, objsize=64 * KiB):
    keys = [i % loop_objects for i in range(n)]
    return Trace("loop", keys, [objsize] * n, loop_objects * objsize, LOOP_FRACTIONS,
                 f"cycle over {loop_objects} x 64 KiB objects; cache % of the loop's bytes")


def replay(policy_name, trace, capacity):
    pol = make_policy(policy_name, capacity)
    contains, access, insert = pol.__contains__, pol.access, pol.insert
    evicted, victims = pol.evicted, pol.victims
    hits = hit_bytes = total_bytes = 0
    t0 = time.perf_counter()
    for key, size in zip(trace.keys, trace.sizes):
        total_bytes += size
        if contains(key):
            hits += 1
            hit_bytes += size
            access(key)
            continue
        if size > capacity:
            continue
        if pol.resident_bytes + size > capacity:
            for v in victims():
                evicted(v)
                if pol.resident_bytes + size <= capacity:
                    break
        insert(key, size)
    dt = time.perf_counter() - t0
    n = len(trace.keys)
    return hits / n, hit_bytes / max(1, total_bytes), n / dt


def _cpu_model():
    from tierd_perf.record import _cpu_model as cpu_model   # one reader of /proc/cpuinfo
    return cpu_model()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=400_000, help="requests per trace")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--record", metavar="FILE", help="append a markdown section to FILE")
    args = ap.parse_args(argv)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    for p in policies:
        make_policy(p, 1)                      # ValueError early for unknown names

    t_start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    n = args.requests
    traces = [trace_zipf(rng, n, 0.8), trace_zipf(rng, n, 1.0), trace_zipf_scan(rng, n),
              trace_kv_prefix(rng, n), trace_loop(rng, n)]
    out = []
    for tr in traces:
        out.append(f"\n**{tr.name}** ({tr.note}; {len(tr.keys)} requests, working set "
                   f"{tr.ws_bytes / MiB:.0f} MiB)\n")
        out.append("| cache (% of WS) | policy | byte-hit % | object-hit % | policy kreq/s |")
        out.append("|---:|---|---:|---:|---:|")
        for frac in tr.fractions:
            cap = max(1, int(tr.ws_bytes * frac))
            for p in policies:
                ohr, bhr, rate = replay(p, tr, cap)
                out.append(f"| {frac * 100:g}% | {p} | {bhr * 100:.1f} | {ohr * 100:.1f} "
                           f"| {rate / 1e3:.0f} |")
                print(out[-1], flush=True)
    elapsed = time.perf_counter() - t_start
    text = "\n".join(out)
    print(text)
    print(f"\n(total {elapsed:.1f} s)")

    if args.record:
        cmd = "python " + " ".join([os.path.relpath(sys.argv[0]) if argv is None else
                                    "perf/eviction_sim.py"] + (sys.argv[1:] if argv is None
                                                               else list(argv)))
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        section = (f"\n### {now} UTC — eviction policy simulation\n\n"
                   f"- command: `{cmd}`\n"
                   f"- machine: {platform.node()}: {_cpu_model()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}\n"
                   f"- {n} requests per trace, seed {args.seed}, {elapsed:.0f} s total. "
                   "Byte-hit/object-hit are % of requests (bytes/objects) served from the "
                   "simulated DRAM tier; kreq/s is the replay loop's rate (policy cost + "
                   "driver, one Python thread).\n"
                   f"{text}\n")
        with open(args.record, "a") as f:
            f.write(section)
        print(f"appended to {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
