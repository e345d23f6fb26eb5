"""store.prewrite: new data space is written once, so no extent is left
"unwritten" (the filesystem would convert it on each first write: slower).

The kernel is asked directly (FIEMAP), on the real data files.
"""
from __future__ import annotations

import fcntl
import os
import struct

import numpy as np
import pytest

MiB = 1 << 20

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_UNWRITTEN = 0x800
_HEAD = struct.Struct("=QQIIII")           # struct fiemap
_EXTENT = struct.Struct("=QQQQQI12x")      # struct fiemap_extent (56 bytes)


def extents(path: str) -> list[tuple[int, int, int]]:
    """(logical offset, length, flags) of every extent of the file."""
    out, start = [], 0
    with open(path, "rb") as f:
        while True:
            count = 256
            buf = bytearray(_HEAD.pack(start, (1 << 64) - 1 - start, 0, 0, count, 0)
                            + bytes(_EXTENT.size * count))
            fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, buf)
            mapped = _HEAD.unpack_from(buf)[3]
            if mapped == 0:
                return out
            for i in range(mapped):
                logical, _phys, length, _r1, _r2, flags = _EXTENT.unpack_from(
                    buf, _HEAD.size + i * _EXTENT.size)
                out.append((logical, length, flags))
                if flags & FIEMAP_EXTENT_LAST:
                    return out
            start = out[-1][0] + out[-1][1]


def unwritten_bytes(path: str) -> int:
    return sum(n for _off, n, fl in extents(path) if fl & FIEMAP_EXTENT_UNWRITTEN)


def data_files(d) -> list[str]:
    return sorted(str(p) for p in d.iterdir() if p.name.startswith("data."))


@pytest.fixture
def fiemap_reports_unwritten(make_store, disk_dir):
    """Skip unless this filesystem keeps fallocated space as unwritten extents
    and reports them (ext4, xfs do; tmpfs and some others do not)."""
    s = make_store(path=disk_dir / "probe", capacity=8 * MiB)
    try:
        files = data_files(disk_dir / "probe")
        if unwritten_bytes(files[0]) == 0:
            pytest.skip("this filesystem reports no unwritten extents for fallocated "
                        "space: nothing for prewrite to convert")
    except OSError as e:
        pytest.skip(f"FIEMAP is not supported here ({e.strerror})")
    finally:
        s.close()


def test_prewrite_leaves_no_unwritten_space(make_store, disk_dir, fiemap_reports_unwritten):
    s = make_store(capacity=16 * MiB, prewrite=True)
    files = data_files(disk_dir / "store")
    for p in files:
        assert unwritten_bytes(p) == 0, extents(p)
        assert os.stat(p).st_blocks * 512 >= os.stat(p).st_size   # still fully allocated
    # The zeros are ordinary free space: objects go in and come back intact.
    data = np.random.default_rng(1).integers(0, 256, 3 * MiB + 5, dtype=np.uint8)
    s.put("default", "k", data)
    assert bytes(s.get("default", "k")) == data.tobytes()


def test_without_prewrite_space_stays_unwritten(make_store, disk_dir, fiemap_reports_unwritten):
    make_store(capacity=16 * MiB)
    assert sum(unwritten_bytes(p) for p in data_files(disk_dir / "store")) > 8 * MiB


def test_grown_capacity_is_prewritten(make_store, disk_dir, fiemap_reports_unwritten):
    s = make_store(capacity=8 * MiB, prewrite=True)
    data = np.arange(2 * MiB, dtype=np.uint8)
    s.put("default", "kept", data)
    s.close()
    s = make_store(capacity=24 * MiB, prewrite=True)
    for p in data_files(disk_dir / "store"):
        assert unwritten_bytes(p) == 0, extents(p)
    assert sum(os.stat(p).st_size for p in data_files(disk_dir / "store")) >= 24 * MiB
    # Growing wrote zeros only over the new space, never over an object.
    assert bytes(s.get("default", "kept")) == data.tobytes()


def test_interrupted_prewrite_resumes(make_store, disk_dir, fiemap_reports_unwritten):
    """A start-up killed while pre-writing a new store leaves a short data
    file and no layout; the next start carries on from the file's end."""
    d = disk_dir / "store"
    d.mkdir()
    # What a killed first start leaves: the part written so far (marked, to
    # see that it is not written a second time).
    with open(d / "data.000", "wb") as f:
        f.write(b"\xab" * (3 * MiB))
    make_store(capacity=16 * MiB, prewrite=True)
    for p in data_files(d):
        assert unwritten_bytes(p) == 0, extents(p)
        assert os.stat(p).st_size >= 16 * MiB
    with open(d / "data.000", "rb") as f:
        head = f.read(3 * MiB + 4096)
    assert head[:3 * MiB] == b"\xab" * (3 * MiB), "pre-writing started over from byte 0"
    assert head[3 * MiB:] == bytes(4096)
