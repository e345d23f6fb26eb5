"""Parse and validate fio job files (the subset tierd-perf understands).

The format is fio's: `[section]` headers, `key=value` or bare `key` lines,
`#`/`;` comments. `[global]` sets defaults for the job sections after it.
Sizes and times are parsed the way fio 3.33 parses them (see parse_size and
parse_time), including fio's "compatibility mode" quirk that, with the
default kb_base=1024, `k`/`kb` mean 1024 while `KiB` means 1000.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Iterable

RW_MODES = ("read", "write", "randread", "randwrite", "randrw", "readwrite", "rw")
IOENGINES = ("native", "store", "tierd")
DURABILITIES = ("staged", "persisted")

# option -> kind. Every option a job file may use; anything else is an error.
OPTIONS: dict[str, str] = {
    "name": "str",
    "description": "str",
    "rw": "rw",
    "readwrite": "rw",
    "rwmixread": "percent",
    "rwmixwrite": "percent",
    "bs": "size",
    "blocksize": "size",
    "iodepth": "int",
    "iodepth_batch_submit": "int",
    "iodepth_batch": "int",
    "size": "size",
    "runtime": "time",
    "timeout": "time",
    "time_based": "bool",
    "ramp_time": "time",
    "filename": "str",
    "directory": "str",
    "numjobs": "int",
    "direct": "bool",
    "ioengine": "str",
    "kb_base": "int",
    # Accepted for compatibility and ignored: tierd-perf always runs job
    # sections one after another (as if every section had stonewall) and
    # always aggregates a job's threads (as group_reporting does).
    "group_reporting": "bool",
    "stonewall": "bool",
    "wait_for_previous": "bool",
    "thread": "bool",
    "randrepeat": "bool",
    # tierd-perf only (not passed to fio): back our I/O buffers with
    # transparent huge pages (default 1, as the daemon does) or plain pages.
    "hugepages": "bool",
    # tierd-perf only, ioengine=tierd: DRAM of the daemon's namespace when
    # the runner starts its own daemon, and the durability of puts.
    "dram": "size",
    "durability": "str",
}
ALIASES = {"readwrite": "rw", "blocksize": "bs", "timeout": "runtime",
           "iodepth_batch": "iodepth_batch_submit"}


class JobFileError(ValueError):
    """A job file (or an override) that cannot be run; the message says where."""


# --------------------------------------------------------------------------
# value parsers


def parse_size(text: str, kb_base: int = 1024) -> int:
    """A byte count as fio parses it: `4k`, `1M`, `2g`, `1MiB`, `512`.

    Suffixes are case-insensitive. With kb_base=1024 (fio's default,
    "compatibility mode") k/m/g/t/p and kb/mb/... are powers of 1024 and the
    IEC forms kib/mib/... are powers of 1000; kb_base=1000 swaps them.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([A-Za-z]*)\s*", str(text))
    if not m:
        raise ValueError(f"not a size: {text!r}")
    num, suffix = float(m.group(1)), m.group(2).lower()
    if kb_base not in (1000, 1024):
        raise ValueError(f"kb_base must be 1000 or 1024, not {kb_base}")
    other = 1000 if kb_base == 1024 else 1024
    powers = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
    if suffix in ("", "b"):
        mult = 1
    elif len(suffix) == 3 and suffix[0] in powers and suffix[1:] == "ib":
        mult = other ** powers[suffix[0]]
    elif suffix[0] in powers and suffix[1:] in ("", "b", "i"):
        mult = kb_base ** powers[suffix[0]]
    else:
        raise ValueError(f"unknown size suffix {m.group(2)!r} in {text!r} (use k, m, g, t, KiB, MiB, ...)")
    return int(num * mult)


_TIME_UNITS = {
    "": 1.0, "s": 1.0, "sec": 1.0,
    "us": 1e-6, "usec": 1e-6,
    "ms": 1e-3, "msec": 1e-3,
    "m": 60.0, "min": 60.0,
    "h": 3600.0, "d": 86400.0,
}


def parse_time(text: str) -> float:
    """A duration in seconds as fio parses runtime/ramp_time: `10`, `10s`, `500ms`, `2m`."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _TIME_UNITS:
        raise ValueError(f"not a time: {text!r} (use e.g. 10, 10s, 500ms, 2m)")
    return float(m.group(1)) * _TIME_UNITS[m.group(2).lower()]


def parse_bool(text: str) -> bool:
    t = str(text).strip().lower()
    if t in ("", "1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r} (use 0 or 1)")


# --------------------------------------------------------------------------
# the job


@dataclasses.dataclass
class Job:
    name: str
    rw: str = "read"
    bs: int = 4096
    iodepth: int = 1
    iodepth_batch_submit: int = 1     # SQEs per io_uring_enter, as fio's
    hugepages: bool = True            # tierd-perf only: THP-backed buffers
    size: int = 0
    runtime: float | None = None      # seconds
    time_based: bool = False
    ramp_time: float = 0.0            # seconds
    rwmixread: int = 50
    filename: str | None = None
    directory: str | None = None
    numjobs: int = 1
    direct: bool = True               # O_DIRECT is the default for our engines
    ioengine: str = "native"
    dram: int = 256 << 20             # tierd-perf only (ioengine=tierd): daemon DRAM
    durability: str = "staged"        # tierd-perf only (ioengine=tierd): staged | persisted
    source: str = "<command line>"
    #: option -> the text given, as fio's "job options" shows it
    options: dict = dataclasses.field(default_factory=dict)

    @property
    def is_random(self) -> bool:
        return self.rw.startswith("rand")

    @property
    def does_read(self) -> bool:
        return self.rw in ("read", "randread", "randrw", "readwrite", "rw")

    @property
    def does_write(self) -> bool:
        return self.rw in ("write", "randwrite", "randrw", "readwrite", "rw")

    @property
    def read_fraction(self) -> float:
        if self.rw in ("read", "randread"):
            return 1.0
        if self.rw in ("write", "randwrite"):
            return 0.0
        return self.rwmixread / 100.0

    def describe(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("options")
        return d


def _apply(job: Job, key: str, raw: str, kb_base: int, where: str) -> None:
    kind = OPTIONS[key]
    field = ALIASES.get(key, key)
    try:
        if kind == "size":
            value = parse_size(raw, kb_base)
        elif kind == "time":
            value = parse_time(raw)
        elif kind == "bool":
            value = parse_bool(raw)
        elif kind in ("int", "percent"):
            value = int(str(raw).strip())
            if value < 0 or (kind == "percent" and value > 100):
                raise ValueError(f"out of range: {raw!r}")
        elif kind == "rw":
            value = str(raw).strip()
            if value not in RW_MODES:
                raise ValueError(f"unknown rw mode {value!r}; supported: {', '.join(RW_MODES)}")
        else:
            value = str(raw).strip()
    except ValueError as e:
        raise JobFileError(f"{where}: bad value for {key}: {e}") from None
    if key == "rwmixwrite":
        field, value = "rwmixread", 100 - value
    if key == "ioengine" and value not in IOENGINES:
        raise JobFileError(f"{where}: unknown ioengine {value!r}; supported: {', '.join(IOENGINES)} "
                           "(native = tierd's io_uring/threadpool engine on a file, store = the object store, "
                           "tierd = put/get through a tierd daemon)")
    if key == "durability" and value not in DURABILITIES:
        raise JobFileError(f"{where}: bad value for durability: {value!r}; supported: "
                           f"{', '.join(DURABILITIES)}")
    if field in Job.__dataclass_fields__ and field not in ("source", "options"):
        setattr(job, field, value)
    job.options[key] = raw


def _validate(job: Job, where: str) -> None:
    if job.bs <= 0:
        raise JobFileError(f"{where}: bs must be > 0")
    if job.iodepth < 1:
        raise JobFileError(f"{where}: iodepth must be >= 1")
    if job.iodepth_batch_submit < 1:
        raise JobFileError(f"{where}: iodepth_batch_submit must be >= 1")
    if job.numjobs < 1:
        raise JobFileError(f"{where}: numjobs must be >= 1")
    if job.size <= 0:
        raise JobFileError(f"{where}: size is required (e.g. size=1g)")
    if job.size < job.bs:
        raise JobFileError(f"{where}: size ({job.size}) is smaller than bs ({job.bs})")
    if job.time_based and not job.runtime:
        raise JobFileError(f"{where}: time_based needs runtime")
    if job.direct and job.bs % 4096 and job.ioengine == "native":
        raise JobFileError(f"{where}: with direct=1, bs must be a multiple of 4096 (got {job.bs})")
    if job.ioengine == "tierd" and job.dram < job.bs:
        raise JobFileError(f"{where}: dram ({job.dram}) is smaller than bs ({job.bs})")
    if job.ioengine == "native" and job.bs >= 1 << 30:
        raise JobFileError(f"{where}: bs must be < 1GiB")


def parse_text(text: str, source: str = "<string>", overrides: dict | None = None) -> list[Job]:
    """Parse job-file text into validated Jobs (one per job section, in order).

    overrides: option -> raw value applied to every job after its file
    options (the command line's --size/--runtime).
    """
    glob: list[tuple[str, str, str]] = []            # (key, raw, where)
    sections: list[tuple[str, str, list]] = []        # (name, where, options)
    current: list | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        where = f"{source}:{lineno}"
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("["):
            if not s.endswith("]") or len(s) < 3:
                raise JobFileError(f"{where}: bad section header {s!r}")
            name = s[1:-1].strip()
            if name == "global":
                current = glob
            else:
                if any(n == name for n, _, _ in sections):
                    raise JobFileError(f"{where}: duplicate job section [{name}]")
                current = []
                sections.append((name, where, current))
            continue
        if current is None:
            raise JobFileError(f"{where}: option outside any section: {s!r}")
        key, sep, raw = s.partition("=")
        key = key.strip()
        raw = raw.strip() if sep else ""
        if key not in OPTIONS:
            raise JobFileError(f"{where}: unknown option {key!r} (supported: {', '.join(sorted(OPTIONS))})")
        current.append((key, raw, where))
    jobs = []
    for name, where, opts in sections:
        job = Job(name=name, source=source)
        all_opts = glob + opts
        kb_base = 1024
        for key, raw, w in all_opts:
            if key == "kb_base":
                _apply(job, key, raw, 1024, w)
                kb_base = int(raw)
        for key, raw, w in all_opts:
            if key != "kb_base":
                _apply(job, key, raw, kb_base, w)
        for key, raw in (overrides or {}).items():
            _apply(job, key, raw, kb_base, f"command line --{key}")
        if "name" in job.options:
            job.name = job.options["name"]
        _validate(job, where)
        jobs.append(job)
    if not jobs:
        raise JobFileError(f"{source}: no job sections (only [global]?)")
    return jobs


def parse_file(path: str, overrides: dict | None = None) -> list[Job]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise JobFileError(f"cannot read job file {path}: {e.strerror}") from None
    return parse_text(text, source=path, overrides=overrides)


def load(paths: Iterable[str], sections: list[str] | None = None,
         overrides: dict | None = None) -> list[Job]:
    jobs = []
    for p in paths:
        jobs.extend(parse_file(p, overrides))
    if sections:
        names = [j.name for j in jobs]
        missing = [s for s in sections if s not in names]
        if missing:
            raise JobFileError(f"no job section named {', '.join(missing)} (have: {', '.join(names)})")
        jobs = [j for j in jobs if j.name in sections]
    return jobs


def job_path(job: Job, thread: int, base_dir: str) -> str:
    """The data file of one of the job's threads, named as fio names it."""
    if job.filename:
        return job.filename
    return os.path.join(job.directory or base_dir, f"{job.name}.{thread}.0")
