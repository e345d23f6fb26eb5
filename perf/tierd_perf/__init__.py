"""tierd-perf: a fio-style benchmark runner for tierd's I/O engine and store.

`tierd-perf run JOB.fio` reads fio job files and runs them against our own
engines (ioengine=native: the io_uring/threadpool engine on a file;
ioengine=store: put/get through the object store), printing fio-shaped text
or JSON, optionally interleaved with real fio runs (--compare-fio).
"""
__version__ = "0.1.0"
FIO_VERSION_STRING = f"tierd-perf {__version__}"
