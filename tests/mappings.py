"""This process's memory as the kernel and numpy see it: which mappings
exist and what backs them (/proc/self/maps, smaps), and what owns an
array's memory."""
from __future__ import annotations

import numpy as np


def _smaps_entry(addr: int) -> dict[str, str]:
    """The smaps lines (field -> rest of the line) of the mapping that holds addr."""
    with open("/proc/self/smaps") as f:
        entry: dict[str, str] | None = None
        for line in f:
            head, _, rest = line.partition(" ")
            if "-" in head and not head.endswith(":"):
                if entry is not None:
                    break
                lo, hi = (int(x, 16) for x in head.split("-"))
                if lo <= addr < hi:
                    entry = {}
            elif entry is not None:
                entry[head.rstrip(":")] = rest.strip()
    if entry is None:
        raise AssertionError(f"no mapping holds {addr:#x}")
    return entry


def mapping_kib(addr: int, field: str = "Rss") -> int:
    """The smaps field (Rss, ShmemPmdMapped, AnonHugePages, ...) in KiB of
    the mapping that holds addr."""
    entry = _smaps_entry(addr)
    if field not in entry:
        raise AssertionError(f"the mapping at {addr:#x} has no {field}")
    return int(entry[field].split()[0])


def mapping_flags(addr: int) -> set[str]:
    """The VmFlags of the mapping that holds addr ("hg": advised for huge
    pages, "nh": advised against them, ...)."""
    return set(_smaps_entry(addr).get("VmFlags", "").split())


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
