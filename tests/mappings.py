"""This process's memory as the kernel and numpy see it: which mappings
exist and what backs them (/proc/self/maps, smaps), and what owns an
array's memory."""
from __future__ import annotations

import numpy as np


def mapping_kib(addr: int, field: str = "Rss") -> int:
    """The smaps field (Rss, ShmemPmdMapped, AnonHugePages, ...) in KiB of
    the mapping that holds addr."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= addr < hi
            elif inside and head == field + ":":
                return int(line.split()[1])
    raise AssertionError(f"no mapping holds {addr:#x} (or it has no {field})")


def mapping_flags(addr: int) -> set[str]:
    """The VmFlags of the mapping that holds addr ("hg": advised for huge
    pages, "nh": advised against them, ...)."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= addr < hi
            elif inside and head == "VmFlags:":
                return set(line.split()[1:])
    raise AssertionError(f"no mapping holds {addr:#x}")


def is_mapped(addr: int) -> bool:
    """Whether any mapping of this process holds addr."""
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return True
    return False


def memory_owner(a):
    """What finally owns an array's memory (numpy bases, then memoryviews)."""
    while True:
        if isinstance(a, np.ndarray) and a.base is not None:
            a = a.base
        elif isinstance(a, memoryview):
            a = a.obj
        else:
            return a
