"""fio 3.33's JSON shape, for checking tierd-perf's --output-format=json."""

# The keys fio 3.33 writes (copied from `fio --output-format=json`).
FIO_TOP_KEYS = {"fio version", "timestamp", "timestamp_ms", "time", "jobs"}
FIO_JOB_KEYS = {"jobname", "groupid", "error", "read", "write", "trim", "sync", "job options"}
FIO_DIR_KEYS = {"io_bytes", "io_kbytes", "bw_bytes", "bw", "iops", "runtime", "total_ios",
                "short_ios", "drop_ios", "slat_ns", "clat_ns", "lat_ns"}
FIO_LAT_KEYS = {"min", "max", "mean", "stddev", "N"}
FIO_PCT_KEYS = ["1.000000", "5.000000", "10.000000", "20.000000", "30.000000", "40.000000",
                "50.000000", "60.000000", "70.000000", "80.000000", "90.000000", "95.000000",
                "99.000000", "99.500000", "99.900000", "99.950000", "99.990000"]


def check_fio_shape(doc: dict, direction: str) -> None:
    assert FIO_TOP_KEYS <= set(doc), set(doc)
    assert doc["fio version"] == "tierd-perf 0.1.0"
    for job in doc["jobs"]:
        assert FIO_JOB_KEYS <= set(job)
        for d in ("read", "write"):
            assert FIO_DIR_KEYS <= set(job[d]), set(job[d])
            assert FIO_LAT_KEYS <= set(job[d]["clat_ns"])
            assert FIO_LAT_KEYS <= set(job[d]["lat_ns"])
        sec = job[direction]
        assert list(sec["clat_ns"]["percentile"]) == FIO_PCT_KEYS
        assert sec["clat_ns"]["N"] == sec["total_ios"]
        assert sec["bw"] == sec["bw_bytes"] // 1024
        assert sec["io_kbytes"] == sec["io_bytes"] // 1024
