"""--compare-fio: ours and fio interleaved on the same data, medians and ratios.

The disk's speed drifts run to run, so the two sides alternate
(ours, fio, ours, fio, ...) and are compared as ratios of medians.
"""
from __future__ import annotations

import os
import statistics

from tierd_perf import fio as fio_mod
from tierd_perf.jobfile import Job
from tierd_perf.progress import ProgressLine
from tierd_perf.runner import JobRun, Workspace, run_job


def side_numbers(read: dict, write: dict) -> dict:
    """Summary of one run (ours or fio), both directions added up."""
    prim = read if read["io_bytes"] or not write["io_bytes"] else write
    p = prim.get("clat_ns", {}).get("percentile", {})
    return {
        "bw_bytes": read["bw_bytes"] + write["bw_bytes"],
        "iops": read["iops"] + write["iops"],
        "io_bytes": read["io_bytes"] + write["io_bytes"],
        "clat_p50_ns": p.get("50.000000", 0),
        "clat_p99_ns": p.get("99.000000", 0),
        "runtime_ms": max(read["runtime"], write["runtime"]),
    }


def fio_target(job: Job, ws: Workspace) -> dict:
    """Where fio runs: the very file(s) ioengine=native uses; for a store job,
    plain files of the same size in the store's directory; for a tierd job,
    in the run's temp dir (where the daemon the runner starts keeps its data)."""
    if job.ioengine == "native":
        if job.filename:
            return {"filename": job.filename}
        return {"directory": job.directory or ws.tmp}
    if job.ioengine == "tierd":
        d = job.directory or ws.tmp
        os.makedirs(d, exist_ok=True)
        return {"directory": d, "filename_format": "fio-compare.$jobname.$jobnum.$filenum"}
    d = ws.store_path(job)
    os.makedirs(d, exist_ok=True)
    return {"directory": d, "filename_format": "fio-compare.$jobname.$jobnum.$filenum"}


def _cleanup_fio_files(job: Job, ws: Workspace, where: dict) -> None:
    if "filename_format" not in where:
        return
    for i in range(job.numjobs):
        try:
            os.unlink(os.path.join(where["directory"], f"fio-compare.{job.name}.{i}.0"))
        except FileNotFoundError:
            pass


def compare_job(job: Job, ws: Workspace, repeat: int, engine_kind: str = "auto",
                show_progress: bool | None = None) -> tuple[list[JobRun], dict]:
    fio_mod.fio_binary()
    where = fio_target(job, ws)
    if job.ioengine == "store" and job.does_write:
        # A store put batch is durable on return (fdatasync + catalog
        # commit): fio syncs as often, once per batch of writes.
        from tierd_perf.store import batch_objects
        where = dict(where, fdatasync=batch_objects(job.bs, job.iodepth))
    elif job.ioengine == "tierd" and job.does_write and job.durability == "persisted":
        # A persisted put batch is on NVMe and synced on return: fio syncs as
        # often, once per batch of iodepth writes.
        where = dict(where, fdatasync=max(1, job.iodepth))
    runs: list[JobRun] = []
    pairs = []
    # a generous timeout: layout of `size` plus the runtime, at a slow 20 MiB/s
    timeout = 120 + (job.runtime or 0) + job.ramp_time + job.size * job.numjobs / (20 << 20)
    try:
        for k in range(repeat):
            ours = run_job(job, ws, engine_kind, show_progress)
            runs.append(ours)
            secs = job.runtime if job.time_based else None
            with ProgressLine(f"{job.name}: fio run {k + 1}/{repeat}", None, secs, None,
                              enabled=show_progress):
                theirs = fio_mod.run(job, timeout=timeout, **where)
            pairs.append({
                "ours": side_numbers(ours.read, ours.write),
                "fio": side_numbers(theirs["read"], theirs["write"]),
            })
    finally:
        _cleanup_fio_files(job, ws, where)
    med = {side: {k: statistics.median(p[side][k] for p in pairs)
                  for k in ("bw_bytes", "iops", "clat_p50_ns", "clat_p99_ns")}
           for side in ("ours", "fio")}

    def ratio(k: str) -> float | None:
        return round(med["ours"][k] / med["fio"][k], 4) if med["fio"][k] else None

    def pair_ratio(k: str) -> float | None:
        # Each pair ran back to back, so its ratio is the least disturbed by
        # the disk's drift over the whole run.
        rs = [p["ours"][k] / p["fio"][k] for p in pairs if p["fio"][k]]
        return round(statistics.median(rs), 4) if rs else None

    cmp = {
        "jobname": job.name,
        "ioengine": job.ioengine,
        "engine": runs[0].engine_name if runs else "",
        "fio_command": " ".join(theirs["_cmd"]) if pairs else "",
        "repeat": repeat,
        "pairs": pairs,
        "median": med,
        "ratio": {"bw": ratio("bw_bytes"), "iops": ratio("iops"),
                  "clat_p99": ratio("clat_p99_ns")},
        "pair_ratio_median": {"bw": pair_ratio("bw_bytes"), "iops": pair_ratio("iops")},
    }
    return runs, cmp
