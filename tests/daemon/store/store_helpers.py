"""Helpers shared by the store tests (a uniquely named module, not conftest)."""
from __future__ import annotations

import os


def flip_byte(store, disk_dir, ns: str, key: str, offset_in_object: int):
    """Flip one byte of an object's first extent on disk; returns its catalog record."""
    rec = store._catalog.get(ns.encode() + b"\0" + key.encode())
    e = rec.extents[0]
    pos = e.page * store.page + offset_in_object
    with open(disk_dir / "store" / f"data.{e.file:03d}", "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x40]))
        f.flush()
        os.fsync(f.fileno())
    return rec
