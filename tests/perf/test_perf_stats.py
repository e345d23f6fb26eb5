"""Percentile math and fio's per-direction numbers."""
import numpy as np

from tierd_perf.stats import FIO_PERCENTILES, LatencyLog, direction, lat_summary, percentiles


def test_percentiles_match_numpy_inverted_cdf():
    rng = np.random.default_rng(0)
    lat = rng.lognormal(12, 1, 10_001).astype(np.int64)
    got = percentiles(lat)
    assert list(got) == [f"{p:.6f}" for p in FIO_PERCENTILES]
    for p in FIO_PERCENTILES:
        assert got[f"{p:.6f}"] == int(np.percentile(lat, p, method="inverted_cdf"))


def test_percentiles_are_recorded_values_by_rank():
    lat = np.arange(1, 101, dtype=np.int64)  # 1..100
    got = percentiles(lat)
    # smallest value with at least p% of samples at or below it
    assert got["50.000000"] == 50
    assert got["99.000000"] == 99
    assert got["99.900000"] == 100
    assert got["1.000000"] == 1


def test_summary_and_empty():
    lat = np.array([100, 200, 300, 400], dtype=np.int64)
    s = lat_summary(lat)
    assert (s["min"], s["max"], s["N"]) == (100, 400, 4)
    assert s["mean"] == 250.0
    assert abs(s["stddev"] - float(np.std(lat, ddof=1))) < 1e-6
    assert lat_summary(np.zeros(0)) == {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}
    assert percentiles(np.zeros(0)) == {}


def test_batch_log_charges_every_op():
    log = LatencyLog()
    log.record(1000, 3)
    log.record(5000, 2)
    log.record(7, 0)
    assert log.ios == 5
    assert log.array().tolist() == [1000, 1000, 1000, 5000, 5000]


def test_direction_bandwidth_units():
    lat = np.full(256, 1000, dtype=np.int64)
    d = direction(256 * 65536, lat, 2_000_000_000)  # 16 MiB in 2 s
    assert d["bw_bytes"] == 8 << 20
    assert d["bw"] == 8192  # KiB/s, as fio
    assert d["iops"] == 128.0
    assert d["runtime"] == 2000
    assert d["total_ios"] == 256
