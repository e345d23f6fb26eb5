"""Keep the DRAM arenas resident in the host when tierd runs in a VM.

A hypervisor may reclaim guest memory the guest has not touched for a
while (the guest kernel cannot see it: the pages stay mapped, no fault is
counted in the guest), and the next write to such a page waits for the host
to bring it back, at first-touch speed. An arena is exactly such memory
between checkpoints. Measured on the development VM (Firecracker, 2.5 GiB
arena, 256 MiB state): an eager save blocked 67-84 ms right after the
daemon started and 247-258 ms after 90 s of idleness, with the client's
mapping still fully PMD-mapped and no guest page faults in between; with
one byte of every page read every 5 s (about 11 ms per pass) it blocked
73-77 ms after the same 90 s.

So under a hypervisor a thread reads one byte of every 4 KiB page of every
arena once per interval: reads only (the bytes are clients' data), in
slices, so the GIL is never held long. On bare metal it does nothing
(`keep_warm = "auto"`); `[dram] keep_warm` forces it on or off.
"""
from __future__ import annotations

import logging
import mmap
import threading
import time
from typing import Callable

import numpy as np

log = logging.getLogger("tierd.dram")

PAGE = mmap.PAGESIZE
SLICE = 64 << 20            # bytes touched per step: ~16k reads, well under a millisecond
MODES = ("auto", "on", "off")


def hypervisor() -> str | None:
    """What says this runs under a hypervisor, or None (bare metal, or unknown)."""
    try:
        with open("/sys/hypervisor/type", encoding="ascii") as f:
            kind = f.read().strip()
        if kind:
            return f"/sys/hypervisor/type is {kind!r}"
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags") and " hypervisor" in line:
                    return "the CPU reports the 'hypervisor' flag"
    except OSError:
        pass
    return None


def decide(mode: str) -> tuple[bool, str]:
    """(on, why) for a [dram] keep_warm setting."""
    assert mode in MODES, mode
    if mode == "on":
        return True, "keep_warm = \"on\""
    if mode == "off":
        return False, "keep_warm = \"off\""
    why = hypervisor()
    if why is None:
        return False, "no hypervisor detected"
    return True, f"running under a hypervisor ({why})"


def touch(array: np.ndarray, stop: threading.Event | None = None) -> int:
    """Read one byte of every page of array (uint8, page-aligned); returns a
    sum of them so the reads cannot be optimised away."""
    total = 0
    for lo in range(0, array.nbytes, SLICE):
        if stop is not None and stop.is_set():
            break
        total += int(array[lo:lo + SLICE:PAGE].sum())
    return total


class KeepWarm:
    """A thread that touches arenas() (a list of uint8 arrays) every interval_s."""

    def __init__(self, arenas: Callable[[], list[np.ndarray]], interval_s: float) -> None:
        assert interval_s > 0
        self.arenas = arenas
        self.interval_s = interval_s
        self.passes = 0
        self.last_pass_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tierd-keep-warm", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            t0 = time.perf_counter()
            try:
                for a in self.arenas():
                    touch(a, self._stop)
            except Exception:  # noqa: BLE001 - a bug here must not take the daemon down
                log.exception("keep-warm pass failed; arenas are no longer kept warm")
                return
            self.last_pass_s = time.perf_counter() - t0
            self.passes += 1
