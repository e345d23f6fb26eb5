"""Exceptions a user can catch by kind.

These types are shared by the daemon and the client (the arrow points
daemon -> client, never back), so an error raised deep in the store reaches a
job with the same class and code. Every message says what went wrong and,
where there is one, what to do about it.
"""
from __future__ import annotations


class TierdError(Exception):
    """Base class of every tierd error. `code` is stable across versions."""

    code = "TIERD_ERROR"


class InvalidArgument(TierdError, ValueError):
    """A request was malformed: bad key, bad size, bad option."""

    code = "INVALID_ARGUMENT"


class NotFound(TierdError, KeyError):
    """The (namespace, key) has no object."""

    code = "NOT_FOUND"

    def __str__(self) -> str:  # KeyError quotes its argument; we want prose.
        return str(self.args[0]) if self.args else "not found"


class UnknownNamespace(TierdError, KeyError):
    """The namespace is not configured in this store/daemon."""

    code = "UNKNOWN_NAMESPACE"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown namespace"


class StoreFull(TierdError):
    """The NVMe store has no room for the object; nothing was written."""

    code = "STORE_FULL"


class ChecksumError(TierdError):
    """Bytes read back do not match the checksum in the catalog.

    Raised for durable data; the store never returns the wrong bytes.
    """

    code = "CHECKSUM_MISMATCH"


class UnsupportedFilesystem(TierdError):
    """The data directory cannot host an O_DIRECT store (tmpfs, ...)."""

    code = "UNSUPPORTED_FILESYSTEM"
