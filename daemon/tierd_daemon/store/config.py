"""Store settings, validated at the boundary.

Every setting has a default that serves a laptop or CI; a bad value raises
InvalidArgument naming the setting, so a typo never becomes a silent default.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from tierd.errors import InvalidArgument

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

_NS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
COMPRESSIONS = ("none", "zstd", "grouped")


@dataclass(frozen=True)
class NamespaceConfig:
    """Per-namespace policy of the NVMe store.

    durable: data is fdatasync'ed before the catalog commit that references
      it (DESIGN.md invariant 1). A non-durable (cache) namespace skips the
      data sync; after a power loss its objects may fail their checksum,
      which readers see as a miss, never as wrong bytes.
    compression: "zstd" stores an object compressed when that saves at least
      one page; the logical bytes and checksum are unchanged. "grouped" does
      the same with dtype-aware coding (store/grouped.py: byte planes of
      itemsize-byte elements, each zstd'ed at grouped.DEFAULT_LEVEL) for
      objects put with an itemsize > 1, and plain zstd (zstd_level) otherwise.
    """

    durable: bool = True
    compression: str = "none"
    zstd_level: int = 3
    # Daemon-level policy (the store itself ignores these):
    dram_bytes: int = 0           # DRAM arena of this namespace; 0: the daemon's default share
    nvme_bytes: int = 0           # NVMe quota; 0: unlimited (up to the store's capacity)
    huge_pages: bool = True       # DRAM arena in 2 MiB pages where the kernel can (dram/arena.py)
    allow_uids: tuple[int, ...] | None = None   # None: any client that can reach the socket
    allow_gids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise InvalidArgument(
                f"compression: {self.compression!r} is not one of {', '.join(COMPRESSIONS)}")
        if not -7 <= self.zstd_level <= 22:
            raise InvalidArgument(f"zstd_level: {self.zstd_level} is outside -7..22")
        for name in ("dram_bytes", "nvme_bytes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise InvalidArgument(f"{name}: expected a size >= 0, got {v!r}")
        if not isinstance(self.huge_pages, bool):
            raise InvalidArgument(f"huge_pages: expected true or false, got {self.huge_pages!r}")
        for name in ("allow_uids", "allow_gids"):
            v = getattr(self, name)
            if v is not None:
                if not isinstance(v, (list, tuple)) or not all(
                        isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
                    raise InvalidArgument(f"{name}: expected a list of numeric ids, got {v!r}")
                object.__setattr__(self, name, tuple(v))

    def allows(self, uid: int, gids: "set[int] | frozenset[int]") -> bool:
        """Whether a client with this uid and group set may use the namespace.

        (Admins, root and the daemon's own uid, are let in by the caller.)
        """
        if self.allow_uids is None and self.allow_gids is None:
            return True
        return uid in (self.allow_uids or ()) or bool(set(self.allow_gids or ()) & set(gids))


def validate_namespace_name(name: str) -> str:
    if not isinstance(name, str) or not _NS_NAME.match(name):
        raise InvalidArgument(
            f"namespace name {name!r} is invalid: use 1-64 letters, digits, '_', '.', '-', "
            "starting with a letter or digit")
    return name


@dataclass(frozen=True)
class StoreConfig:
    """Layout and engine settings of one store directory.

    capacity: bytes of preallocated data space, split over data files of at
      most file_size bytes each. Growing it later extends the store; it never
      shrinks.
    max_io_bytes: the largest single read/write handed to the engine; bigger
      objects become several ops in one batch, so one object fills the queue.
    staging_bytes: aligned bounce memory for puts whose source buffer is not
      page-aligned (and for every object's last partial page).
    prewrite: write zeros over data space when it is added (a new store, or
      capacity grown), before serving. fallocate leaves extents "unwritten"
      and the filesystem converts them on each first write: measured on
      ext4, writing such space took ~1.5x as long as overwriting. Costs one
      sequential pass over the space at start-up, so it is off by default.
    """

    capacity: int = 1 * GiB
    file_size: int = 64 * GiB
    engine: str = "auto"
    queue_depth: int = 64
    max_io_bytes: int = 1 * MiB
    staging_bytes: int = 32 * MiB
    max_object_bytes: int = 0  # 0: up to the capacity
    prewrite: bool = False
    catalog_map_size: int = 4 * GiB
    namespaces: dict[str, NamespaceConfig] = field(
        default_factory=lambda: {"default": NamespaceConfig()})

    def __post_init__(self) -> None:
        def positive(name: str, value: int, minimum: int = 1) -> None:
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise InvalidArgument(f"{name}: expected an integer >= {minimum}, got {value!r}")

        positive("capacity", self.capacity, 1 << 20)
        positive("file_size", self.file_size, 1 << 20)
        positive("queue_depth", self.queue_depth)
        if self.queue_depth > 4096:
            raise InvalidArgument(f"queue_depth: {self.queue_depth} exceeds 4096")
        positive("max_io_bytes", self.max_io_bytes, 4 * KiB)
        if self.max_io_bytes % (4 * KiB) or self.max_io_bytes > 64 * MiB:
            raise InvalidArgument("max_io_bytes: must be a multiple of 4 KiB, at most 64 MiB")
        positive("staging_bytes", self.staging_bytes, 1 * MiB)
        positive("catalog_map_size", self.catalog_map_size, 16 * MiB)
        if self.max_object_bytes < 0:
            raise InvalidArgument("max_object_bytes: must be >= 0 (0 means up to the capacity)")
        if not isinstance(self.prewrite, bool):
            raise InvalidArgument(f"prewrite: expected true or false, got {self.prewrite!r}")
        if self.engine not in ("auto", "io_uring", "threadpool"):
            raise InvalidArgument(
                f"engine: {self.engine!r} is not one of auto, io_uring, threadpool")
        if not self.namespaces:
            raise InvalidArgument("namespaces: at least one namespace is required")
        for name, ns in self.namespaces.items():
            validate_namespace_name(name)
            if not isinstance(ns, NamespaceConfig):
                raise InvalidArgument(f"namespaces.{name}: expected a NamespaceConfig")
