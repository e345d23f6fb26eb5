#!/usr/bin/env python3
"""Issue #4 item 4: dtype-aware ("grouped") compression of checkpoint chunks.

For each kind of tensor, 16 MiB chunks (4 different ones) are coded with
store/grouped.py (byte planes, each zstd'ed or kept raw) and, on the same
bytes at the same level, with plain zstd (the "zstd" namespace option);
the table gives the stored/logical ratio (all chunks together) and the
median encode/decode speed per chunk, in GB/s of logical bytes (1 GB = 1e9
bytes), one thread.

    (a) bf16 weights ~ N(0, 0.02)         (top 16 bits of float32, as bf16 is)
    (b) fp32 Adam exp_avg ~ N(0, 1e-3)
    (c) fp32 Adam exp_avg_sq = |N(0, 1e-6)|
    (d) fp32 weights ~ N(0, 0.02)

    python perf/bench_codec.py                       # levels 1 and 3
    python perf/bench_codec.py --quick               # smoke test
    python perf/bench_codec.py --record perf/RESULTS.md
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time

import numpy as np

from tierd_daemon.store import codec, grouped

MiB = 1 << 20
CHUNK = 16 * MiB


def bf16(f32: np.ndarray) -> np.ndarray:
    """bf16 bit patterns of float32 values (truncation: the top 16 bits)."""
    return (f32.view(np.uint32) >> 16).astype(np.uint16)


def datasets(chunks: int, seed: int = 0):
    rng = np.random.default_rng(seed)

    def normal(n, std):
        return rng.standard_normal(n, dtype=np.float32) * np.float32(std)

    yield ("(a) bf16 weights ~ N(0, 0.02)", 2,
           [bf16(normal(CHUNK // 2, 0.02)).view(np.uint8) for _ in range(chunks)])
    yield ("(b) fp32 Adam exp_avg ~ N(0, 1e-3)", 4,
           [normal(CHUNK // 4, 1e-3).view(np.uint8) for _ in range(chunks)])
    yield ("(c) fp32 Adam exp_avg_sq = abs(N(0, 1e-6))", 4,
           [np.abs(normal(CHUNK // 4, 1e-6)).view(np.uint8) for _ in range(chunks)])
    yield ("(d) fp32 weights ~ N(0, 0.02)", 4,
           [normal(CHUNK // 4, 0.02).view(np.uint8) for _ in range(chunks)])


def measure(chunks, enc, dec, repeat: int, dec_into=None):
    """(stored/logical, median encode GB/s, median decode GB/s, median decode-into GB/s)
    over chunks x repeat. dec returns fresh memory (as Store.get); dec_into
    (when given) writes into one reused buffer (as get_many(out=...) could)."""
    te, td, ti, stored = [], [], [], 0
    reused = np.zeros(CHUNK, np.uint8)
    for i, c in enumerate(chunks):
        for r in range(repeat):
            t0 = time.perf_counter()
            blob = enc(c)
            te.append(time.perf_counter() - t0)
            if blob is None:       # declined: stored raw, nothing to decode
                continue
            t0 = time.perf_counter()
            out = dec(blob, c.nbytes)
            td.append(time.perf_counter() - t0)
            if r == 0:
                if not np.array_equal(np.frombuffer(out, np.uint8), c):
                    raise SystemExit("bench_codec: round trip FAILED")
            if dec_into is not None:
                t0 = time.perf_counter()
                dec_into(blob, c.nbytes, reused)
                ti.append(time.perf_counter() - t0)
                if r == 0 and not np.array_equal(reused[:c.nbytes], c):
                    raise SystemExit("bench_codec: round trip (into a buffer) FAILED")
        stored += c.nbytes if blob is None else len(blob)
    logical = sum(c.nbytes for c in chunks)
    gbs = lambda ts: CHUNK / statistics.median(ts) / 1e9 if ts else float("nan")  # noqa: E731
    return stored / logical, gbs(te), gbs(td), gbs(ti)


def plane_ratios(chunk, itemsize, level) -> str:
    blob = grouped.encode(chunk, itemsize, level)
    if blob is None:
        return "declined"
    n = chunk.nbytes // itemsize
    parts = []
    for k in range(itemsize):
        kind, length = grouped._PLANE.unpack_from(blob, grouped._HEAD.size + k * grouped._PLANE.size)
        parts.append(f"{length / n:.2f}" + ("" if kind == grouped.PLANE_ZSTD else " raw"))
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="1,3", help="zstd levels to compare (default 1,3)")
    ap.add_argument("--chunks", type=int, default=4, help="16 MiB chunks per kind (default 4)")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per chunk (default 3)")
    ap.add_argument("--quick", action="store_true", help="1 chunk, 1 pass, level 1")
    ap.add_argument("--record", metavar="FILE", help="append the table to FILE (perf/RESULTS.md)")
    args = ap.parse_args(argv)
    if args.quick:
        args.levels, args.chunks, args.repeat = "1", 1, 1
    levels = [int(x) for x in args.levels.split(",")]

    rows = ["| data | codec | level | stored / logical | encode GB/s | decode GB/s (fresh memory) "
            "| decode GB/s (into a reused buffer) | grouped planes (stored / plane, byte 0 first) |",
            "|---|---|---:|---:|---:|---:|---:|---|"]
    for name, itemsize, chunks in datasets(args.chunks):
        for level in levels:
            g = measure(chunks, lambda c: grouped.encode(c, itemsize, level), grouped.decode,
                        args.repeat, dec_into=lambda b, n, o: grouped.decode(b, n, out=o))
            z = measure(chunks, lambda c: codec.zstd_compress(c, level), codec.zstd_decompress,
                        args.repeat)
            planes = plane_ratios(chunks[0], itemsize, level)
            for codec_name, (ratio, enc, dec, into), extra in (("grouped", g, planes),
                                                               ("zstd", z, "")):
                into = "" if into != into else f"{into:.2f}"
                row = (f"| {name} | {codec_name} | {level} | {ratio:.3f} | {enc:.2f} | {dec:.2f} "
                       f"| {into} | {extra} |")
                rows.append(row)
                print(row, flush=True)
    notes = [f"- {args.chunks} chunk(s) of 16 MiB per kind, {args.repeat} timed pass(es) each; "
             "speeds are medians per chunk in GB/s (1e9 bytes/s) of logical bytes, one thread; "
             "ratio = all stored bytes / all logical bytes (a declined chunk counts as raw). "
             "Decode into fresh memory pays the first touch of 16 MiB (as Store.get does); "
             "python-zstandard's decompress always returns fresh memory.",
             f"- grouped: store/grouped.py, planes probed on {grouped.PROBE_SAMPLES} x "
             f"{grouped.PROBE_SLICE // 1024} KiB samples and kept raw when zstd does not shrink them; "
             f"the store uses level {grouped.DEFAULT_LEVEL}. zstd: python-zstandard on the whole "
             "chunk (the \"zstd\" namespace option)."]
    print("\n".join(notes))
    if args.record:
        record(args.record, sys.argv[1:] if argv is None else argv, rows, notes)
    return 0


def record(path: str, argv: list[str], rows: list[str], notes: list[str]) -> None:
    from tierd_perf.record import append_section
    cmd = "python perf/bench_codec.py " + " ".join(shlex.quote(x) for x in argv)
    append_section(path, "codec: dtype-aware (grouped) compression of checkpoint chunks "
                   "(issue 4)", cmd, [*rows, "", *notes], "/tmp")
    print(f"bench_codec: results appended to {path}")


if __name__ == "__main__":
    sys.exit(main())
