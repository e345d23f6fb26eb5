"""Append a run's comparison to perf/RESULTS.md (`tierd-perf run --record FILE`).

Numbers in RESULTS.md are only ever written by this code, with the date,
the machine and the exact command, so every figure can be traced to a run.
"""
from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _mem_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 0.0


def _fs_of(path: str) -> str:
    """'ext4 on /dev/vda' for the mount holding path."""
    path = os.path.realpath(path)
    best = ("", "?", "?")
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                dev, mnt, fstype = line.split()[:3]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                    best = (mnt, fstype, dev)
    except OSError:
        pass
    return f"{best[1]} on {best[2]}"


def _fio_version() -> str:
    try:
        return subprocess.run(["fio", "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "fio not found"


def machine_line(data_dir: str) -> str:
    return (f"{platform.node()}: {_cpu_model()}, {os.cpu_count()} cores, {_mem_gib():.0f} GiB, "
            f"Linux {platform.release()}, data on {_fs_of(data_dir)}, {_fio_version()}, "
            f"Python {platform.python_version()}")


def section(argv: list[str], comparisons: list[dict], data_dir: str) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cmd = "tierd-perf " + " ".join(shlex.quote(a) for a in argv)
    lines = [f"### {when}", "", f"- command: `{cmd}`", f"- machine: {machine_line(data_dir)}", ""]
    if comparisons:
        rep = comparisons[0]["repeat"]
        lines += [f"Medians of {rep} interleaved pairs (ours, fio, ours, fio, ...); fio: "
                  "ioengine=io_uring, direct=1, fixedbufs, registerfiles, same file. "
                  "`*-plainpages` jobs use plain 4 KiB pages for our buffers as fio does; "
                  "the others use our default transparent huge pages. Store writes are durable per "
                  "batch; fio gets `--fdatasync=<objects per batch>` for them.", "",
                  "| job | engine | ours MiB/s | fio MiB/s | ratio of medians | median pair ratio "
                  "| ours IOPS | fio IOPS | p99 clat us (ours / fio) |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for c in comparisons:
            o, f = c["median"]["ours"], c["median"]["fio"]
            r, pr = c["ratio"], c.get("pair_ratio_median", {})
            fmt = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
            lines.append(
                f"| {c['jobname']} | {c['ioengine']} ({c['engine']}) | {o['bw_bytes'] / 2**20:.0f} "
                f"| {f['bw_bytes'] / 2**20:.0f} | {fmt(r['bw'])} | {fmt(pr.get('bw'))} "
                f"| {o['iops']:.0f} | {f['iops']:.0f} "
                f"| {o['clat_p99_ns'] / 1e3:.0f} / {f['clat_p99_ns'] / 1e3:.0f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


HEADER = ("# Performance results\n\nAppended by the benchmarks' `--record perf/RESULTS.md` "
          "(tierd-perf, perf/bench_*.py); never edited by hand.\n\n")


def write(path: str, text: str) -> None:
    """Append one section to the results file (created with its header)."""
    new = not os.path.exists(path)
    with open(path, "a", encoding="utf-8") as f:
        if new:
            f.write(HEADER)
        f.write(text)


def append_section(path: str, title: str, command: str, body: list[str], data_dir: str) -> None:
    """The shape every benchmark records: date and title, command, machine, body."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    write(path, "\n".join([f"### {when} — {title}", "", f"- command: `{command.strip()}`",
                           f"- machine: {machine_line(data_dir)}", "", *body, ""]) + "\n")


def append(path: str, argv: list[str], comparisons: list[dict], data_dir: str) -> None:
    write(path, section(argv, comparisons, data_dir))
    print(f"tierd-perf: results appended to {path}", file=sys.stderr)
