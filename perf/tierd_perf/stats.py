"""Latency statistics and fio's per-direction numbers.

Latencies are kept raw (int64 nanoseconds, one per I/O) and summarised with
numpy. Percentiles use the "inverted CDF" definition, the one fio's
histogram code implements: the p-th percentile is the smallest recorded
value v such that at least p% of the samples are <= v. (fio reports the
upper edge of a log-linear histogram bucket, so its values are rounded up
by up to ~1.6%; ours are exact.)
"""
from __future__ import annotations

import numpy as np

FIO_PERCENTILES = (1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0,
                   90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99)


def percentiles(lat_ns: np.ndarray, pcts=FIO_PERCENTILES) -> dict[str, int]:
    """{"50.000000": ns, ...} with fio's key format; {} when there are no samples."""
    lat = np.asarray(lat_ns)
    if lat.size == 0:
        return {}
    vals = np.percentile(lat, list(pcts), method="inverted_cdf")
    return {f"{p:.6f}": int(v) for p, v in zip(pcts, vals)}


def lat_summary(lat_ns: np.ndarray, with_percentiles: bool = True) -> dict:
    """fio's clat_ns/lat_ns object: min, max, mean, stddev, N (+ percentile)."""
    lat = np.asarray(lat_ns, dtype=np.int64)
    if lat.size == 0:
        return {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}
    out = {
        "min": int(lat.min()),
        "max": int(lat.max()),
        "mean": round(float(lat.mean()), 6),
        # fio prints the sample standard deviation
        "stddev": round(float(lat.std(ddof=1)) if lat.size > 1 else 0.0, 6),
        "N": int(lat.size),
    }
    if with_percentiles:
        out["percentile"] = percentiles(lat)
    return out


class LatencyLog:
    """Append-only per-op latencies.

    record_each(lat) takes one latency per op (the engine measures each op's
    queue-to-completion time); record(ns, n) says "n ops completed after ns"
    for callers that can only time a whole batch (the store jobs).
    """

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self.ios = 0

    def record(self, ns: int, n: int) -> None:
        if n:
            self._chunks.append(np.full(n, ns, dtype=np.int64))
            self.ios += n

    def record_each(self, lat_ns: np.ndarray) -> None:
        if lat_ns.size:
            self._chunks.append(np.asarray(lat_ns, dtype=np.int64).copy())
            self.ios += int(lat_ns.size)

    def array(self) -> np.ndarray:
        if not self._chunks:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(self._chunks)


def direction(io_bytes: int, lat_ns: np.ndarray, runtime_ns: int) -> dict:
    """One of fio's "read"/"write" objects for io_bytes moved in runtime_ns."""
    lat = np.asarray(lat_ns, dtype=np.int64)
    total_ios = int(lat.size)
    runtime_ms = int(round(runtime_ns / 1e6)) if io_bytes else 0
    secs = runtime_ns / 1e9 if runtime_ns > 0 else 0.0
    bw_bytes = int(io_bytes / secs) if secs and io_bytes else 0
    iops = total_ios / secs if secs and total_ios else 0.0
    clat = lat_summary(lat)
    return {
        "io_bytes": int(io_bytes),
        "io_kbytes": int(io_bytes) // 1024,
        "bw_bytes": bw_bytes,
        "bw": bw_bytes // 1024,           # KiB/s, as fio's "bw"
        "iops": round(iops, 6),
        "runtime": runtime_ms,             # msec
        "total_ios": total_ios,
        "short_ios": 0,
        "drop_ios": 0,
        # no separate submission latency: the engine submits and reaps a
        # whole batch in one call, so slat is folded into clat.
        "slat_ns": lat_summary(lat[:0], with_percentiles=False),
        "clat_ns": clat,
        "lat_ns": lat_summary(lat, with_percentiles=False),
    }
