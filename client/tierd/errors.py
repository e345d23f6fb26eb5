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


class TierFull(TierdError):
    """The DRAM tier stayed full (dirty data not yet flushed) past the timeout."""

    code = "TIER_FULL"


class PermissionDenied(TierdError, PermissionError):
    """The caller's uid/gid may not use this namespace or operation."""

    code = "PERMISSION_DENIED"


class DaemonUnavailable(TierdError, ConnectionError):
    """No tierd daemon answers on the socket (not running, or restarting)."""

    code = "DAEMON_UNAVAILABLE"


class ProtocolError(TierdError):
    """A malformed frame or message; the connection is closed after it."""

    code = "PROTOCOL_ERROR"


class LeaseExpired(TierdError):
    """A lease was released, timed out, or belonged to a connection that ended."""

    code = "LEASE_EXPIRED"


class Busy(TierdError):
    """The daemon is at a bound (connections, leases, queue); retry later."""

    code = "BUSY"


class Internal(TierdError):
    """A bug or an unexpected failure inside the daemon; the message has the detail."""

    code = "INTERNAL"


def error_for_code(code: str) -> type[TierdError]:
    """The exception class for a wire error code (TierdError if unknown)."""
    return _BY_CODE.get(code, TierdError)


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


_BY_CODE = {c.code: c for c in _all_subclasses(TierdError)}
