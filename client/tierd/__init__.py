"""tierd: the thin client of the tierd storage daemon.

Importing this package needs numpy and nothing heavier (no lmdb, cffi,
zstandard or the native module): training and serving jobs import it.
"""
from tierd.errors import (
    ChecksumError,
    InvalidArgument,
    NotFound,
    StoreFull,
    TierdError,
    UnknownNamespace,
    UnsupportedFilesystem,
)

__version__ = "0.1.0"

__all__ = [
    "ChecksumError",
    "InvalidArgument",
    "NotFound",
    "StoreFull",
    "TierdError",
    "UnknownNamespace",
    "UnsupportedFilesystem",
    "__version__",
]
