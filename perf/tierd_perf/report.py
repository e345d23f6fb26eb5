"""fio-like text summaries and fio 3.33's JSON layout."""
from __future__ import annotations

import time

from tierd_perf import FIO_VERSION_STRING
from tierd_perf.runner import JobRun


def _size(n: float) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{int(n // div)}{unit}"
    return f"{int(n)}B" if n < 1024 else f"{n / 1024:.0f}KiB"


def _rate(bps: float) -> str:
    mib = bps / (1 << 20)
    return f"{mib:.0f}MiB/s" if mib >= 100 else f"{mib:.1f}MiB/s"


def _iops(v: float) -> str:
    return f"{v / 1000:.1f}k" if v >= 10000 else f"{v:.0f}"


def _dir_text(label: str, d: dict, lat_label: str = "clat") -> list[str]:
    c = d["clat_ns"]
    lines = [
        f"  {label}: IOPS={_iops(d['iops'])}, BW={_rate(d['bw_bytes'])} "
        f"({d['bw_bytes'] / 1e6:.0f}MB/s)({_size(d['io_bytes'])}/{d['runtime']}msec)",
        f"    {lat_label} (usec): min={c['min'] / 1e3:.0f}, max={c['max'] / 1e3:.0f}, "
        f"avg={c['mean'] / 1e3:.2f}, stdev={c['stddev'] / 1e3:.2f}",
    ]
    pct = c.get("percentile", {})
    if pct:
        lines.append(f"    {lat_label} percentiles (usec):")
        cells = [f"{float(k):5.2f}th=[{v / 1e3:5.0f}]" for k, v in pct.items()]
        for i in range(0, len(cells), 4):
            lines.append("     | " + ", ".join(cells[i:i + 4]) + ("," if i + 4 < len(cells) else ""))
    return lines


def job_text(run: JobRun, groupid: int = 0) -> str:
    j = run.job
    eng = f"{j.ioengine} ({run.engine_name})" if run.engine_name and run.engine_name != j.ioengine else j.ioengine
    head = (f"{j.name}: (groupid={groupid}, jobs={j.numjobs}): err= 0: ioengine={eng}, rw={j.rw}, "
            f"bs={_size(j.bs)}, iodepth={j.iodepth}, direct={int(j.direct)}")
    lines = [head]
    lat_label = "clat (batch)" if run.lat_kind == "batch" else "clat"
    if run.read["io_bytes"]:
        lines += _dir_text("read", run.read, lat_label)
    if run.write["io_bytes"]:
        lines += _dir_text("write", run.write, lat_label)
    if run.lat_kind == "batch":
        lines.append("  (clat (batch): every object of a put_many/get_many batch is charged the "
                     "batch's wall time)")
    return "\n".join(lines)


def comparison_text(comparisons: list[dict]) -> str:
    if not comparisons:
        return ""
    rep = comparisons[0]["repeat"]
    out = [f"Comparison with fio (ioengine=io_uring, direct=1): medians of {rep} interleaved pair(s)",
           f"{'job':<18} {'ours MiB/s':>10} {'fio MiB/s':>10} {'bw ratio':>8} "
           f"{'ours IOPS':>10} {'fio IOPS':>10} {'iops ratio':>10} {'p99 usec ours/fio':>18}"]
    for c in comparisons:
        o, f = c["median"]["ours"], c["median"]["fio"]
        r = c["ratio"]
        fmt = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
        out.append(f"{c['jobname']:<18} {o['bw_bytes'] / (1 << 20):>10.1f} {f['bw_bytes'] / (1 << 20):>10.1f} "
                   f"{fmt(r['bw']):>8} {o['iops']:>10.0f} {f['iops']:>10.0f} {fmt(r['iops']):>10} "
                   f"{o['clat_p99_ns'] / 1e3:>8.0f} / {f['clat_p99_ns'] / 1e3:<8.0f}")
    out.append("(native: per-op clat from the engine; store: clat per batch. fio: per-op clat. "
               "Store puts are durable (fdatasync + catalog commit per batch); for store write "
               "jobs fio runs with --fdatasync=<objects per batch>, the same durability.)")
    return "\n".join(out)


def text(runs: list[JobRun], comparisons: list[dict] | None = None) -> str:
    parts = [job_text(r, i) for i, r in enumerate(runs)]
    if comparisons:
        parts.append(comparison_text(comparisons))
    return "\n\n".join(parts) + "\n"


def json_doc(runs: list[JobRun], comparisons: list[dict] | None = None) -> dict:
    now = time.time()
    doc = {
        "fio version": FIO_VERSION_STRING,
        "timestamp": int(now),
        "timestamp_ms": int(now * 1000),
        "time": time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(now)),
        "jobs": [r.fio_job(i) for i, r in enumerate(runs)],
    }
    if comparisons is not None:
        doc["comparison"] = comparisons
    return doc
