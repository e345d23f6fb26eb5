"""Run real fio (ioengine=io_uring, direct=1) for a job and parse its JSON."""
from __future__ import annotations

import json
import shutil
import subprocess

from tierd_perf.jobfile import Job

FIO_MISSING = "fio is not installed (needed for --compare-fio): apt-get install fio"


class FioError(RuntimeError):
    pass


def fio_binary() -> str:
    path = shutil.which("fio")
    if not path:
        raise FioError(FIO_MISSING)
    return path


def _ms(seconds: float) -> str:
    return f"{max(1, int(round(seconds * 1000)))}ms"


def fio_args(job: Job, *, filename: str | None = None, directory: str | None = None,
             filename_format: str | None = None, fdatasync: int = 0) -> list[str]:
    """fio's command line mirroring `job` on the given file (or directory)."""
    args = [
        f"--name={job.name}",
        "--ioengine=io_uring",
        "--direct=1",
        f"--rw={job.rw}",
        f"--bs={job.bs}",
        f"--iodepth={job.iodepth}",
        f"--iodepth_batch_submit={job.iodepth_batch_submit}",
        # Our engine registers its buffers and files with the ring; give fio
        # the same so the comparison is of the engines, not of their setup.
        "--fixedbufs",
        "--registerfiles",
        f"--size={job.size}",
        f"--numjobs={job.numjobs}",
        "--group_reporting",
        "--output-format=json",
    ]
    if job.rw in ("randrw", "readwrite", "rw"):
        args.append(f"--rwmixread={job.rwmixread}")
    if job.runtime:
        args.append(f"--runtime={_ms(job.runtime)}")
    if job.time_based:
        args.append("--time_based")
    if job.ramp_time:
        args.append(f"--ramp_time={_ms(job.ramp_time)}")
    if fdatasync:
        # Same durability as the store: one fdatasync per `fdatasync` writes.
        args.append(f"--fdatasync={fdatasync}")
    if filename:
        args.append(f"--filename={filename}")
    if directory:
        args.append(f"--directory={directory}")
    if filename_format:
        args.append(f"--filename_format={filename_format}")
    return args


def parse_output(text: str) -> dict:
    """fio's JSON, skipping any warning lines fio prints before it."""
    start = text.find("{")
    if start < 0:
        raise FioError(f"fio printed no JSON: {text.strip()[:500]}")
    try:
        return json.loads(text[start:])
    except json.JSONDecodeError as e:
        raise FioError(f"cannot parse fio's JSON output: {e}") from None


def run(job: Job, timeout: float | None = None, **where) -> dict:
    """Run fio for `job` and return its first (group-reported) job object."""
    cmd = [fio_binary(), *fio_args(job, **where)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FioError(f"fio timed out after {timeout:.0f}s: {' '.join(cmd)}") from None
    if p.returncode != 0:
        raise FioError(f"fio failed (exit {p.returncode}): {' '.join(cmd)}\n{(p.stderr or p.stdout).strip()[-2000:]}")
    data = parse_output(p.stdout)
    if not data.get("jobs"):
        raise FioError("fio's JSON has no jobs")
    out = data["jobs"][0]
    out["_cmd"] = cmd
    return out
