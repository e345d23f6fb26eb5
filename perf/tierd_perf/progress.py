"""A one-line progress indicator on stderr, shown only when stderr is a TTY."""
from __future__ import annotations

import sys
import threading
import time


class ProgressLine:
    def __init__(self, label: str, total_bytes: int | None, seconds: float | None,
                 read_done, stream=None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.total = total_bytes
        self.seconds = seconds
        self.read_done = read_done
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def note(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"\r\x1b[K{text}")
            self.stream.flush()

    def __enter__(self) -> "ProgressLine":
        if self.enabled:
            self._t0 = time.monotonic()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        last, last_t = 0, self._t0
        while not self._stop.wait(0.5):
            now = time.monotonic()
            done = self.read_done() if self.read_done else 0
            rate = (done - last) / max(now - last_t, 1e-9) / (1 << 20)
            last, last_t = done, now
            el = now - self._t0
            parts = [f"{self.label}:"]
            if self.seconds:
                parts.append(f"{min(100.0, 100 * el / self.seconds):3.0f}% {el:.1f}/{self.seconds:g}s")
            elif self.total and self.read_done:
                parts.append(f"{min(100.0, 100 * done / self.total):3.0f}%")
            else:
                parts.append(f"{el:.1f}s")
            if self.read_done:
                parts.append(f"{rate:.1f}MiB/s")
            self.note(" ".join(parts))

    def __exit__(self, *exc) -> None:
        if self._thread:
            self._stop.set()
            self._thread.join()
            self.note("")
