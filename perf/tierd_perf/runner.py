"""Run jobs: lay out data, start numjobs threads, aggregate like group_reporting."""
from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tierd_perf import stats
from tierd_perf import native as native_eng
from tierd_perf import store as store_eng
from tierd_perf import tierd_engine as tierd_eng
from tierd_perf.common import Progress, ThreadResult
from tierd_perf.jobfile import Job, job_path
from tierd_perf.progress import ProgressLine


class Workspace:
    """Where a run's data lives. Jobs naming no filename/directory share one
    temporary directory (on /tmp), deleted by close(); files and stores at
    paths the job file names are left in place, as fio leaves its files."""

    def __init__(self, jobs: list[Job], tmp_parent: str | None = None) -> None:
        self.jobs = jobs
        self._tmp_parent = tmp_parent
        self._tmp: str | None = None

    @property
    def tmp(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="tierd-perf-", dir=self._tmp_parent)
        return self._tmp

    def data_path(self, job: Job, thread: int) -> str:
        if job.filename:
            return job.filename
        return job_path(job, thread, job.directory or self.tmp)

    def store_path(self, job: Job) -> str:
        return job.filename or job.directory or os.path.join(self.tmp, "store")

    def store_capacity(self, job: Job) -> int:
        path = self.store_path(job)
        same = [j for j in self.jobs if j.ioengine == "store" and self.store_path(j) == path]
        return store_eng.capacity_for(same or [job])

    def daemon_root(self) -> str:
        """A fresh directory for a daemon the runner starts (data + socket), under tmp."""
        return tempfile.mkdtemp(prefix="d-", dir=self.tmp)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


class JobRun:
    """The outcome of one job: fio's per-job JSON object plus extras."""

    def __init__(self, job: Job, threads: list[ThreadResult]) -> None:
        self.job = job
        self.threads = threads
        self.engine_name = threads[0].engine_name if threads else ""
        self.lat_kind = threads[0].lat_kind if threads else "op"
        runtime = max((t.runtime_ns for t in threads), default=0)
        rlat = np.concatenate([t.read_lat.array() for t in threads]) if threads else np.zeros(0, np.int64)
        wlat = np.concatenate([t.write_lat.array() for t in threads]) if threads else np.zeros(0, np.int64)
        self.read = stats.direction(sum(t.read_bytes for t in threads), rlat, runtime)
        self.write = stats.direction(sum(t.write_bytes for t in threads), wlat, runtime)
        self.runtime_ns = runtime

    def fio_job(self, groupid: int = 0) -> dict:
        empty = stats.direction(0, np.zeros(0, np.int64), 0)
        return {
            "jobname": self.job.name,
            "groupid": groupid,
            "error": 0,
            "eta": 0,
            "elapsed": int(round(self.runtime_ns / 1e9)),
            "job options": {k: str(v) for k, v in self.job.options.items()},
            "read": self.read,
            "write": self.write,
            "trim": empty,
            "sync": {"total_ios": 0, "lat_ns": stats.lat_summary(np.zeros(0), with_percentiles=False)},
            "job_runtime": int(round(self.runtime_ns / 1e6)),
            # tierd-perf extras (fio's readers ignore unknown keys)
            "ioengine": self.job.ioengine,
            "engine": self.engine_name,
            "numjobs": self.job.numjobs,
            "latency_note": (f"clat is per batch: every object of a {self.job.ioengine} batch is "
                             "charged the batch's wall time") if self.lat_kind == "batch"
                            else "clat is each op's queue-to-completion time, measured by the engine",
        }

    def primary(self) -> dict:
        """The direction that moved data (read for mixed jobs)."""
        return self.read if self.read["io_bytes"] or not self.write["io_bytes"] else self.write


def run_job(job: Job, ws: Workspace, engine_kind: str = "auto", show_progress: bool | None = None) -> JobRun:
    progress = Progress(job.numjobs)
    seconds = job.runtime if job.time_based else None
    total = None if seconds else (job.size // job.bs) * job.bs * job.numjobs
    line = ProgressLine(job.name, total, seconds, progress.total, enabled=show_progress)
    store = None
    daemon = None
    try:
        if job.ioengine == "native":
            paths = [ws.data_path(job, i) for i in range(job.numjobs)]
            for p in dict.fromkeys(paths):
                if not os.path.exists(p) or os.path.getsize(p) < job.size:
                    line.note(f"{job.name}: laying out {p}")
                native_eng.layout(job, p, engine_kind)

            def one(i: int) -> ThreadResult:
                return native_eng.run_thread(job, i, paths[i], progress, engine_kind)
        elif job.ioengine == "tierd":
            sock = job.filename
            if not sock:
                daemon = tierd_eng.Daemon(tierd_eng.capacity_for(job), job.dram, ws.daemon_root())
                line.note(f"{job.name}: starting tierd serve in {daemon.root}")
                daemon.start()
                sock = daemon.socket
            if job.does_read:
                line.note(f"{job.name}: laying out objects through {sock}")
                with daemon.connect() if daemon else _connect(sock) as c:
                    tierd_eng.layout(c, job)

            def one(i: int) -> ThreadResult:
                return tierd_eng.run_thread(job, i, sock, progress)
        else:
            path = ws.store_path(job)
            os.makedirs(path, exist_ok=True)
            store = store_eng.open_store(path, ws.store_capacity(job), job.iodepth, engine_kind)
            if job.does_read:
                line.note(f"{job.name}: laying out objects in {path}")
                store_eng.layout(store, job)

            def one(i: int) -> ThreadResult:
                return store_eng.run_thread(job, i, store, progress)

        with line:
            if job.numjobs == 1:
                results = [one(0)]
            else:
                with ThreadPoolExecutor(job.numjobs, thread_name_prefix=f"tierd-perf-{job.name}") as pool:
                    futs = [pool.submit(one, i) for i in range(job.numjobs)]
                    try:
                        results = [f.result() for f in futs]
                    except BaseException:
                        progress.stop.set()
                        raise
    finally:
        if store is not None:
            store.close()
        if daemon is not None:
            daemon.stop(remove=True)
    return JobRun(job, results)


def _connect(sock: str):
    import tierd
    return tierd.connect(sock, timeout=120)


def run_jobs(jobs: list[Job], ws: Workspace, engine_kind: str = "auto",
             show_progress: bool | None = None) -> list[JobRun]:
    return [run_job(j, ws, engine_kind, show_progress) for j in jobs]
