"""tierd-perf: run fio job files against tierd's I/O engine and object store."""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import sys

from tierd_perf import __version__

EPILOG = """\
job files:
  fio's format: [global] and [job] sections of key=value lines. Understood
  options: rw (read, write, randread, randwrite, randrw + rwmixread), bs,
  iodepth, size, runtime, time_based, ramp_time, filename, directory,
  numjobs, direct, ioengine (native | store). Sizes take fio's suffixes
  (4k, 1m, 1g; KiB = 1000 as in fio's default kb_base), times s/ms/m.
  Sections run one after another; a job's numjobs threads are reported
  together (group_reporting).

ioengines:
  native   tierd's engine (io_uring, or the threadpool fallback) on a file
  store    put/get of bs-sized objects through the tierd object store;
           filename (or directory) names the store's directory

examples:
  tierd-perf run perf/jobs/seq-read-1m.fio
  tierd-perf run perf/jobs/issue2-bench.fio --compare-fio --repeat 3
  tierd-perf run perf/jobs/randread-4k.fio --runtime 3s --output-format=json
  tierd-perf parse perf/jobs/issue2-bench.fio
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tierd-perf",
        description="fio-style benchmarks of tierd's I/O engine and object store.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"tierd-perf {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def common(sp):
        sp.add_argument("jobfiles", nargs="+", metavar="JOB", help="fio job file(s)")
        sp.add_argument("--section", action="append", metavar="NAME",
                        help="run only this job section (repeatable)")
        sp.add_argument("--size", metavar="SIZE", help="override every job's size (e.g. 256m)")
        sp.add_argument("--runtime", metavar="TIME", help="override every job's runtime (e.g. 5s)")

    r = sub.add_parser("run", help="run job files and print fio-style results",
                       description="Run the jobs of fio job files against tierd's engines.",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    common(r)
    r.add_argument("--output-format", choices=("normal", "json"), default="normal",
                   help="normal: fio-like text (default); json: fio's JSON layout")
    r.add_argument("--output", metavar="FILE", help="write results to FILE instead of stdout")
    r.add_argument("--compare-fio", action="store_true",
                   help="run fio (io_uring, direct=1) on the same data, interleaved, and compare")
    r.add_argument("--repeat", type=int, default=3, metavar="N",
                   help="with --compare-fio: number of (ours, fio) pairs per job (default 3)")
    r.add_argument("--engine", choices=("auto", "io_uring", "threadpool"), default="auto",
                   help="which tierd engine backs ioengine=native/store (default auto)")
    r.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    r.add_argument("--record", metavar="FILE",
                   help="append the comparison (date, machine, command, ratios) to FILE, "
                        "e.g. perf/RESULTS.md; needs --compare-fio")

    pp = sub.add_parser("parse", help="print the jobs a job file defines (after [global] and overrides)",
                        description="Parse and validate job files; print the resulting jobs.")
    common(pp)
    pp.add_argument("--output-format", choices=("normal", "json"), default="normal")
    return p


def _overrides(args) -> dict:
    o = {}
    if args.size:
        o["size"] = args.size
    if args.runtime:
        o["runtime"] = args.runtime
    return o


def _err(msg: str) -> int:
    print(f"tierd-perf: error: {msg}", file=sys.stderr)
    return 1


def _cmd_parse(args) -> int:
    from tierd_perf.jobfile import load
    jobs = load(args.jobfiles, args.section, _overrides(args))
    if args.output_format == "json":
        print(json.dumps([j.describe() for j in jobs], indent=2))
    else:
        for j in jobs:
            print(f"[{j.name}]  ({j.source})")
            for k, v in j.describe().items():
                if k not in ("name", "source"):
                    print(f"  {k:<11} = {v}")
    return 0


def _cmd_run(args) -> int:
    from tierd_perf import report
    from tierd_perf.jobfile import load
    from tierd_perf.runner import Workspace, run_job

    jobs = load(args.jobfiles, args.section, _overrides(args))
    if args.repeat < 1:
        return _err("--repeat must be >= 1")
    if args.record and not args.compare_fio:
        return _err("--record writes ratios against fio: add --compare-fio")
    if args.compare_fio:
        from tierd_perf import fio
        fio.fio_binary()  # fail before any work if fio is missing
    show = False if args.no_progress else None
    ws = Workspace(jobs)
    where = next((j.options.get("filename") or j.options.get("directory") for j in jobs
                  if j.options.get("filename") or j.options.get("directory")), None)
    data_dir = os.path.dirname(os.path.abspath(where)) if where else tempfile.gettempdir()
    runs, comparisons = [], []
    try:
        for job in jobs:
            if args.compare_fio:
                from tierd_perf.compare import compare_job
                job_runs, cmp = compare_job(job, ws, args.repeat, args.engine, show)
                runs.append(job_runs[-1])
                comparisons.append(cmp)
            else:
                runs.append(run_job(job, ws, args.engine, show))
    finally:
        ws.close()
    if args.output_format == "json":
        out = json.dumps(report.json_doc(runs, comparisons if args.compare_fio else None), indent=2) + "\n"
    else:
        out = report.text(runs, comparisons)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(out)
    else:
        sys.stdout.write(out)
    if args.record:
        from tierd_perf import record
        record.append(args.record, args.argv, comparisons, data_dir)
    return 0


try:
    from tierd.errors import TierdError as _TierdError
except ImportError:  # pragma: no cover - the client package ships with tierd
    class _TierdError(Exception):
        pass


def main(argv: list[str] | None = None) -> int:
    from tierd_perf.fio import FioError
    from tierd_perf.jobfile import JobFileError

    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        if args.command == "parse":
            return _cmd_parse(args)
        return _cmd_run(args)
    except (JobFileError, FioError) as e:
        return _err(str(e))
    except _TierdError as e:  # the store refused (capacity, damaged store, ...)
        return _err(f"store: {e}")
    except OSError as e:
        return _err(f"I/O error: {e}")
    except KeyboardInterrupt:
        print("\ntierd-perf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
