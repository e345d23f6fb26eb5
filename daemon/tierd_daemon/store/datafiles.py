"""Preallocated O_DIRECT data files and the directory lock of a store.

A store directory holds `catalog/` (LMDB), `data.NNN` files and `store.lock`.
Data files are preallocated with fallocate so that a write never needs new
blocks (no ENOSPC mid-object) and are opened O_DIRECT: the store does its own
caching (the DRAM tier), the page cache would only double it. With prewrite,
new space is also written once (zeros) so that later writes are overwrites
rather than conversions of unwritten extents.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
import time

from tierd.errors import TierdError, UnsupportedFilesystem
from tierd_daemon.dio import probe_dio

log = logging.getLogger("tierd.store")

TMPFS_MAGIC = 0x01021994
RAMFS_MAGIC = 0x858458F6


def data_file_name(index: int) -> str:
    return f"data.{index:03d}"


def choose_page_size(directory: str) -> int:
    """The store's page: the OS page, or the device's O_DIRECT unit if larger.

    Refuses filesystems without O_DIRECT (tmpfs, ramfs) with a message that
    says what to do, instead of failing on the first write.
    """
    info = probe_dio(directory)
    if info.fs_magic in (TMPFS_MAGIC, RAMFS_MAGIC):
        raise UnsupportedFilesystem(
            f"{directory} is on {info.fs_name or 'tmpfs'}, which has no O_DIRECT; "
            "put the store on an SSD/NVMe filesystem (ext4, xfs, btrfs)")
    page = max(os.sysconf("SC_PAGE_SIZE"), info.offset_align or 0, info.mem_align or 0,
               info.logical_block_size or 0)
    assert page & (page - 1) == 0, f"alignment {page} is not a power of two"
    # O_DIRECT can still be refused by filesystems statx knows nothing about
    # (FUSE, some network filesystems): try it for real.
    probe = os.path.join(directory, ".odirect-probe")
    try:
        fd = os.open(probe, os.O_CREAT | os.O_RDWR | os.O_DIRECT | os.O_CLOEXEC, 0o600)
        os.close(fd)
    except OSError as e:
        if e.errno == errno.EINVAL:
            raise UnsupportedFilesystem(
                f"{directory} ({info.fs_name or 'unknown filesystem'}) does not support O_DIRECT; "
                "put the store on an SSD/NVMe filesystem (ext4, xfs, btrfs)") from None
        raise
    finally:
        try:
            os.unlink(probe)
        except FileNotFoundError:
            pass
    return page


class DirectoryLock:
    """One process owns a store directory (flock, released by the kernel on death)."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "store.lock")
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise TierdError(
                f"store {directory} is in use by another process (pid {owner}); "
                "stop it first (e.g. systemctl stop tierd)") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


PREWRITE_BLOCK = 16 << 20


def _write_zeros(fd: int, path: str, start: int, end: int) -> None:
    """Write zeros over [start, end) of an O_DIRECT file, in order.

    Each write extends the file, so a start-up killed midway leaves a shorter
    file and the next one carries on from its end.
    """
    assert start % 4096 == 0 and end % 4096 == 0, (start, end)
    zeros = mmap.mmap(-1, PREWRITE_BLOCK)      # page-aligned, as O_DIRECT needs
    t0 = time.perf_counter()
    log.info("pre-writing %s from byte %d to %d (store.prewrite)", path, start, end)
    try:
        with memoryview(zeros) as buf:
            off = start
            while off < end:
                n = os.pwrite(fd, buf[:min(PREWRITE_BLOCK, end - off)], off)
                if n <= 0:
                    raise OSError(errno.EIO, f"short write pre-writing {path}")
                off += n
    finally:
        zeros.close()
    dt = time.perf_counter() - t0
    log.info("pre-wrote %d MiB of %s in %.1f s (%.2f GB/s)", (end - start) >> 20, path, dt,
             (end - start) / max(dt, 1e-9) / 1e9)


class DataFiles:
    """The open data files: fds in index order, sizes in bytes."""

    def __init__(self, directory: str, sizes: list[int], prewrite: bool = False) -> None:
        self.directory = directory
        self.prewrite = prewrite
        self.sizes = list(sizes)
        self.fds: list[int] = []
        try:
            for i, size in enumerate(self.sizes):
                self.fds.append(self._open(i, size))
        except BaseException:
            self.close()
            raise

    def _open(self, index: int, size: int) -> int:
        path = os.path.join(self.directory, data_file_name(index))
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_DIRECT | os.O_CLOEXEC, 0o600)
        try:
            have = os.fstat(fd).st_size
            if have < size:
                # posix_fallocate reserves real blocks: later writes cannot
                # hit ENOSPC, and a too-small disk fails here, at start-up.
                try:
                    if self.prewrite:
                        _write_zeros(fd, path, have, size)
                    os.posix_fallocate(fd, have, size - have)
                except OSError as e:
                    if e.errno == errno.ENOSPC:
                        raise TierdError(
                            f"no space to preallocate {path} to {size} bytes; "
                            "free disk space or lower store.capacity") from None
                    raise
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def grow(self, sizes: list[int]) -> None:
        """Extend to the new sizes (never shrink); fsyncs the directory."""
        assert len(sizes) >= len(self.sizes)
        assert all(n >= o for n, o in zip(sizes, self.sizes))
        for i, size in enumerate(sizes):
            if i < len(self.fds):
                if size > self.sizes[i]:
                    os.close(self.fds[i])
                    self.fds[i] = self._open(i, size)
            else:
                self.fds.append(self._open(i, size))
        self.sizes = list(sizes)
        fsync_dir(self.directory)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def plan_file_sizes(capacity: int, file_size: int, page: int, current: list[int] | None = None
                    ) -> list[int]:
    """Data file sizes for `capacity` bytes: full files of file_size, then a tail.

    With `current`, existing files keep their size except the last, which may
    grow up to file_size before new files are added.
    """
    def round_up(x: int) -> int:
        return (x + page - 1) // page * page

    file_size = file_size // page * page
    assert file_size > 0
    sizes = list(current or [])
    have = sum(sizes)
    if have >= capacity:
        return sizes
    need = round_up(capacity - have)
    if sizes and sizes[-1] < file_size:
        add = min(file_size - sizes[-1], need)
        sizes[-1] += add
        need -= add
    while need > 0:
        add = min(file_size, need)
        sizes.append(add)
        need -= add
    return sizes


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
