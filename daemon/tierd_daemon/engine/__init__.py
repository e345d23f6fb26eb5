"""I/O engines: pick one at start-up with open_engine().

    with open_engine("auto", queue_depth=64) as eng:
        eng.register_files([fd])
        ops = make_ops(n); ...; eng.submit(ops); raise_for_results(ops)
"""
from __future__ import annotations

import errno
import logging
import os

from .base import Engine
from .ops import MAX_OP_BYTES, OP_DTYPE, OP_FSYNC, OP_READ, OP_WRITE, make_ops, raise_for_results
from .threadpool import ThreadPoolEngine

__all__ = [
    "Engine", "open_engine", "ENGINE_KINDS", "ThreadPoolEngine",
    "OP_READ", "OP_WRITE", "OP_FSYNC", "OP_DTYPE", "MAX_OP_BYTES", "make_ops", "raise_for_results",
]

log = logging.getLogger("tierd.engine")

ENGINE_KINDS = ("auto", "io_uring", "threadpool")

# Errors that mean "this host cannot do io_uring at all" (disabled by sysctl,
# seccomp, old kernel): only these make "auto" fall back. Anything else
# (ENOMEM, EINVAL, ...) is a real problem and must surface.
_UNAVAILABLE = {errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP}


def _unavailable_hint(err: int) -> str:
    name = errno.errorcode.get(err, str(err))
    if err == errno.EPERM:
        try:
            with open("/proc/sys/kernel/io_uring_disabled") as f:
                val = f.read().strip()
            if val != "0":
                return f"{name}: kernel.io_uring_disabled={val}"
        except OSError:
            pass
        return f"{name}: blocked by seccomp or kernel.io_uring_disabled?"
    if err == errno.ENOSYS:
        return f"{name}: kernel without io_uring"
    return f"{name}: {os.strerror(err)}"


_warned: set[str] = set()


def _warn_once(msg: str, *args) -> None:
    """The fallback is said once per process, not once per ring opened."""
    text = msg % args
    if text not in _warned:
        _warned.add(text)
        log.warning("%s", text)


def open_engine(kind: str = "auto", queue_depth: int = 64, submit_batch: int = 1) -> Engine:
    """Open an engine: "io_uring", "threadpool", or "auto" (io_uring, falling
    back to threadpool with one warning only when io_uring is unavailable).

    submit_batch (io_uring only): SQEs per io_uring_enter while refilling the
    queue, like fio's iodepth_batch_submit; 1 keeps submissions staggered.
    """
    if kind not in ENGINE_KINDS:
        raise ValueError(f"unknown engine kind {kind!r}; expected one of {', '.join(ENGINE_KINDS)}")
    if kind == "threadpool":
        return ThreadPoolEngine(queue_depth)
    try:
        from .uring import UringEngine
    except ImportError as e:
        if kind == "io_uring":
            raise
        _warn_once("io_uring unavailable (native module not importable: %s); using the threadpool engine", e)
        return ThreadPoolEngine(queue_depth)
    try:
        return UringEngine(queue_depth, submit_batch=submit_batch)
    except OSError as e:
        if kind == "io_uring" or e.errno not in _UNAVAILABLE:
            raise
        _warn_once("io_uring unavailable (%s); using the threadpool engine", _unavailable_hint(e.errno))
        return ThreadPoolEngine(queue_depth)
