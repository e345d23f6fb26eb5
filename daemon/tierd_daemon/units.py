"""Human sizes and durations, parsed the way fio and systemd users write them."""
from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_POW = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_size(value: int | str, what: str = "size") -> int:
    """'4GiB', '512M', '1.5g', 4096 -> bytes (binary units, as fio reads them)."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a size like 512MiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{what}: size must not be negative")
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"{what}: {value!r} is not a size (examples: 4096, 64KiB, 512M, 2GiB)")
    num, unit = float(m.group(1)), m.group(2).lower()
    return int(num * (1024 ** _POW[unit]))


def format_size(n: int) -> str:
    for unit, div in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"
