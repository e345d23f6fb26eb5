"""tierd: the thin client of the tierd storage daemon.

Importing this package needs numpy and nothing heavier (no lmdb, cffi,
zstandard or the native module): training and serving jobs import it.

    import tierd
    with tierd.connect() as c:               # $TIERD_SOCKET or the default paths
        c.put("default", "key", data)        # bytes, memoryview, numpy arrays
        with c.get("default", "key") as lease:
            lease.array                      # read-only uint8 view, zero-copy
"""
from tierd.errors import (
    Busy,
    ChecksumError,
    DaemonUnavailable,
    Internal,
    InvalidArgument,
    LeaseExpired,
    NotFound,
    PermissionDenied,
    ProtocolError,
    StoreFull,
    TierdError,
    TierFull,
    UnknownNamespace,
    UnsupportedFilesystem,
)
from tierd.client import Client, Lease, connect
from tierd.reservation import Reservation

__version__ = "0.1.0"

__all__ = [
    "Busy",
    "ChecksumError",
    "Client",
    "DaemonUnavailable",
    "Internal",
    "InvalidArgument",
    "Lease",
    "LeaseExpired",
    "NotFound",
    "PermissionDenied",
    "ProtocolError",
    "Reservation",
    "StoreFull",
    "TierFull",
    "TierdError",
    "UnknownNamespace",
    "UnsupportedFilesystem",
    "__version__",
    "connect",
]
